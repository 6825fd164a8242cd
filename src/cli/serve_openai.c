/* OpenAI request validation and response JSON. Every field is checked for
 * type and range before anything is queued, so that a bad request is a 400
 * naming the field rather than a surprise in a worker. Fields OpenAI has
 * and clttt does not use (user, logit_bias...) are ignored, as other
 * OpenAI-compatible servers do, unless ignoring them would change the
 * answer silently (n > 1, non-zero penalties, logprobs). */
#include "serve_openai.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int session_name_valid(const char *name) {
  size_t n = 0;
  for (; name[n]; n++) {
    char c = name[n];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return 0;
  }
  return n >= 1 && n <= SESSION_NAME_MAX;
}

static char *duplicate(const char *text) {
  size_t n = strlen(text) + 1;
  char *copy = malloc(n);
  if (copy)
    memcpy(copy, text, n);
  return copy;
}

static int bad(char *error, size_t error_size, char *param, size_t param_size, const char *field,
               const char *format, ...) __attribute__((format(printf, 6, 7)));
static int bad(char *error, size_t error_size, char *param, size_t param_size, const char *field,
               const char *format, ...) {
  va_list list;
  va_start(list, format);
  vsnprintf(error, error_size, format, list);
  va_end(list);
  snprintf(param, param_size, "%s", field);
  return 400;
}

#define BAD(field, ...) bad(error, error_size, param, param_size, field, __VA_ARGS__)

/* A number field within [low, high]; absent leaves *value as it is. */
static int number_field(json_t *root, const char *name, double low, double high, int low_open, float *value,
                        char *error, size_t error_size, char *param, size_t param_size) {
  json_t *field = json_object_get(root, name);
  if (!field || json_is_null(field))
    return 0;
  if (!json_is_number(field))
    return BAD(name, "'%s' must be a number", name);
  double x = json_number_value(field);
  if (!isfinite(x) || x < low || x > high || (low_open && x <= low))
    return BAD(name, "'%s' is %g; it must be in %s%g, %g]", name, x, low_open ? "(" : "[", low, high);
  *value = (float)x;
  return 0;
}

static int integer_field(json_t *root, const char *name, long long low, long long high, long long *value,
                         char *error, size_t error_size, char *param, size_t param_size) {
  json_t *field = json_object_get(root, name);
  if (!field || json_is_null(field))
    return 0;
  if (!json_is_integer(field))
    return BAD(name, "'%s' must be an integer", name);
  long long x = json_integer_value(field);
  if (x < low || x > high)
    return BAD(name, "'%s' is %lld; it must be in [%lld, %lld]", name, x, low, high);
  *value = x;
  return 0;
}

/* A message's content: a string, or OpenAI's list of parts of which only
 * "text" parts are understood. */
static char *message_content(json_t *content, int index, char *error, size_t error_size, char *param,
                             size_t param_size) {
  if (json_is_string(content))
    return duplicate(json_string_value(content));
  if (json_is_null(content))
    return duplicate("");
  if (!json_is_array(content)) {
    BAD("messages", "messages[%d].content must be a string or a list of text parts", index);
    return NULL;
  }
  size_t total = 1, i;
  json_t *part;
  json_array_foreach(content, i, part) {
    const char *type = json_string_value(json_object_get(part, "type"));
    const char *text = json_string_value(json_object_get(part, "text"));
    if (!type || strcmp(type, "text") != 0 || !text) {
      BAD("messages", "messages[%d].content[%zu]: only {\"type\": \"text\", \"text\": ...} parts are supported",
          index, i);
      return NULL;
    }
    total += strlen(text);
  }
  char *joined = malloc(total);
  if (!joined)
    return NULL;
  joined[0] = '\0';
  json_array_foreach(content, i, part) strcat(joined, json_string_value(json_object_get(part, "text")));
  return joined;
}

static int parse_messages(json_t *root, const chat_template *tmpl, openai_request *request, char *error,
                          size_t error_size, char *param, size_t param_size) {
  json_t *messages = json_object_get(root, "messages");
  if (!json_is_array(messages) || json_array_size(messages) == 0)
    return BAD("messages", "'messages' must be a non-empty list of {\"role\", \"content\"} objects");
  size_t count = json_array_size(messages);
  chat_message *list = calloc(count, sizeof *list);
  char **contents = calloc(count, sizeof *contents);
  int status = 0;
  if (!list || !contents) {
    status = BAD("", "out of host memory");
    goto done;
  }
  for (size_t i = 0; i < count && !status; i++) {
    json_t *message = json_array_get(messages, i);
    const char *role = json_string_value(json_object_get(message, "role"));
    if (!json_is_object(message) || !role) {
      status = BAD("messages", "messages[%zu] must be an object with a string 'role'", i);
      break;
    }
    contents[i] = message_content(json_object_get(message, "content"), (int)i, error, error_size, param,
                                  param_size);
    if (!contents[i]) {
      status = 400;
      break;
    }
    list[i].role = role;
    list[i].content = contents[i];
  }
  if (!status) {
    char why[512] = "";
    request->prompt = chat_template_render(tmpl, list, (int)count, 1, why, sizeof why);
    if (!request->prompt)
      status = BAD("messages", "%s", why);
  }
done:
  for (size_t i = 0; contents && i < count; i++)
    free(contents[i]);
  free(contents);
  free(list);
  return status;
}

static int parse_prompt(json_t *root, openai_request *request, char *error, size_t error_size, char *param,
                        size_t param_size) {
  json_t *prompt = json_object_get(root, "prompt");
  if (json_is_array(prompt) && json_array_size(prompt) == 1 && json_is_string(json_array_get(prompt, 0)))
    prompt = json_array_get(prompt, 0);
  if (json_is_string(prompt)) {
    request->prompt = duplicate(json_string_value(prompt));
    request->add_bos = 1;
    return request->prompt ? 0 : BAD("", "out of host memory");
  }
  if (json_is_array(prompt) && json_array_size(prompt) > 0 && json_is_integer(json_array_get(prompt, 0))) {
    size_t count = json_array_size(prompt), i;
    request->prompt_ids = malloc(count * sizeof *request->prompt_ids);
    if (!request->prompt_ids)
      return BAD("", "out of host memory");
    json_t *id;
    json_array_foreach(prompt, i, id) {
      if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > INT32_MAX)
        return BAD("prompt", "prompt[%zu]: a prompt of token ids holds non-negative integers only", i);
      request->prompt_ids[i] = (int32_t)json_integer_value(id);
    }
    request->prompt_id_count = (int)count;
    return 0;
  }
  if (json_is_array(prompt) && json_array_size(prompt) > 1)
    return BAD("prompt", "'prompt' holds %zu prompts; clttt serves one prompt per request",
               json_array_size(prompt));
  return BAD("prompt", "'prompt' must be a string or a list of token ids");
}

int openai_parse_request(const char *body, size_t size, int chat, const chat_template *tmpl,
                         openai_request *request, char *error, size_t error_size, char *param,
                         size_t param_size) {
  memset(request, 0, sizeof *request);
  request->chat = chat;
  request->max_tokens = chat ? 0 : 16; /* OpenAI's defaults */
  request->sampling = clttt_sampler_default_params();
  request->sampling.temperature = 1.0f;
  snprintf(param, param_size, "%s", "");
  json_error_t json_error;
  json_t *root = json_loadb(body, size, JSON_REJECT_DUPLICATES, &json_error);
  if (!root)
    return BAD("", "the body is not valid JSON: %s (line %d, column %d)", json_error.text, json_error.line,
               json_error.column);
  int status = 0;
  long long integer = 0;
  if (!json_is_object(root)) {
    status = BAD("", "the body must be a JSON object");
    goto done;
  }
  json_t *field = json_object_get(root, "model");
  if (field && !json_is_string(field) && !json_is_null(field)) {
    status = BAD("model", "'model' must be a string");
    goto done;
  }
  field = json_object_get(root, "stream");
  if (field && !json_is_boolean(field) && !json_is_null(field)) {
    status = BAD("stream", "'stream' must be true or false");
    goto done;
  }
  request->stream = json_is_true(field);
  integer = request->max_tokens;
  if ((status = integer_field(root, "max_tokens", 1, 1000000000LL, &integer, error, error_size, param,
                              param_size)) ||
      (chat && (status = integer_field(root, "max_completion_tokens", 1, 1000000000LL, &integer, error,
                                       error_size, param, param_size))))
    goto done;
  request->max_tokens = (int)integer;
  integer = 1;
  if ((status = integer_field(root, "n", 1, 1, &integer, error, error_size, param, param_size)))
    goto done;
  integer = 0;
  if ((status = integer_field(root, "top_k", 0, 1000000000LL, &integer, error, error_size, param, param_size)))
    goto done;
  request->sampling.top_k = (int)integer;
  /* Without a seed every request draws differently, as OpenAI's do. */
  static unsigned long long counter;
  integer = (long long)(__atomic_add_fetch(&counter, 0x9E3779B97F4A7C15ULL, __ATOMIC_RELAXED) >> 1);
  if ((status = integer_field(root, "seed", -9223372036854775807LL - 1, 9223372036854775807LL, &integer, error,
                              error_size, param, param_size)))
    goto done;
  request->sampling.seed = (uint64_t)integer;
  float penalty = 0.0f;
  if ((status = number_field(root, "temperature", 0, 2, 0, &request->sampling.temperature, error, error_size,
                             param, param_size)) ||
      (status = number_field(root, "top_p", 0, 1, 1, &request->sampling.top_p, error, error_size, param,
                             param_size)) ||
      (status = number_field(root, "min_p", 0, 1, 0, &request->sampling.min_p, error, error_size, param,
                             param_size)) ||
      (status = number_field(root, "repeat_penalty", 0, 100, 1, &request->sampling.repetition_penalty, error,
                             error_size, param, param_size)) ||
      (status = number_field(root, "repetition_penalty", 0, 100, 1, &request->sampling.repetition_penalty, error,
                             error_size, param, param_size)))
    goto done;
  static const char *const unsupported_penalties[] = {"frequency_penalty", "presence_penalty"};
  for (int i = 0; i < 2; i++) {
    penalty = 0.0f;
    if ((status = number_field(root, unsupported_penalties[i], -2, 2, 0, &penalty, error, error_size, param,
                               param_size)))
      goto done;
    if (penalty != 0.0f) {
      status = BAD(unsupported_penalties[i], "'%s' is not supported; use 'repetition_penalty'",
                   unsupported_penalties[i]);
      goto done;
    }
  }
  field = json_object_get(root, "logprobs");
  if (field && !json_is_null(field) && !json_is_false(field)) {
    status = BAD("logprobs", "'logprobs' is not supported");
    goto done;
  }
  field = json_object_get(root, "stop");
  if (field && !json_is_null(field)) {
    json_t *list = field;
    if (json_is_string(field)) {
      list = json_array();
      json_array_append(list, field);
    } else if (!json_is_array(field) || json_array_size(field) > OPENAI_MAX_STOP) {
      status = BAD("stop", "'stop' must be a string or a list of up to %d strings", OPENAI_MAX_STOP);
      goto done;
    } else {
      json_incref(list);
    }
    size_t i;
    json_t *entry;
    json_array_foreach(list, i, entry) {
      const char *text = json_string_value(entry);
      if (!text || !text[0] || strlen(text) > OPENAI_MAX_STOP_BYTES) {
        status = BAD("stop", "stop[%zu] must be a non-empty string of at most %d bytes", i, OPENAI_MAX_STOP_BYTES);
        break;
      }
      request->stop[request->stop_count++] = duplicate(text);
    }
    json_decref(list);
    if (status)
      goto done;
  }
  field = json_object_get(root, "session");
  if (field && !json_is_null(field)) {
    if (!json_is_string(field) || !session_name_valid(json_string_value(field))) {
      status = BAD("session", "'session' must be a name of 1 to %d characters from A-Z a-z 0-9 _ -",
                   SESSION_NAME_MAX);
      goto done;
    }
    snprintf(request->session, sizeof request->session, "%s", json_string_value(field));
  }
  status = chat ? parse_messages(root, tmpl, request, error, error_size, param, param_size)
                : parse_prompt(root, request, error, error_size, param, param_size);
done:
  json_decref(root);
  if (status)
    openai_request_free(request);
  return status;
}

void openai_request_free(openai_request *request) {
  free(request->prompt);
  free(request->prompt_ids);
  for (int i = 0; i < request->stop_count; i++)
    free(request->stop[i]);
  memset(request, 0, sizeof *request);
}

static const char *error_type(int http_status) {
  switch (http_status) {
  case 401: return "authentication_error";
  case 404: return "not_found_error";
  case 503: return "server_overloaded";
  case 500: return "server_error";
  default: return "invalid_request_error";
  }
}

static char *dump(json_t *root) {
  char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
  json_decref(root);
  return text;
}

char *openai_error_body(int http_status, const char *message, const char *param) {
  json_t *error = json_pack("{s:s, s:s, s:o, s:o}", "message", message, "type", error_type(http_status), "param",
                            param && param[0] ? json_string(param) : json_null(), "code", json_null());
  return dump(json_pack("{s:o}", "error", error));
}

static json_t *usage(const openai_result *result) {
  return json_pack("{s:i, s:i, s:i}", "prompt_tokens", result->prompt_tokens, "completion_tokens",
                   result->completion_tokens, "total_tokens", result->prompt_tokens + result->completion_tokens);
}

static void add_session(json_t *root, const openai_result *result) {
  if (!result->session || !result->session[0])
    return;
  json_object_set_new(root, "session",
                      json_pack("{s:s, s:i, s:b, s:i}", "id", result->session, "reused_tokens",
                                result->reused_tokens, "reset", result->session_reset, "position",
                                result->session_position));
}

static json_t *finish(const openai_result *result) {
  return result->finish_reason ? json_string(result->finish_reason) : json_null();
}

char *openai_response_body(int chat, const openai_result *result) {
  json_t *choice;
  if (chat)
    choice = json_pack("{s:i, s:{s:s, s:s}, s:o}", "index", 0, "message", "role", "assistant", "content",
                       result->text, "finish_reason", finish(result));
  else
    choice = json_pack("{s:s, s:i, s:n, s:o}", "text", result->text, "index", 0, "logprobs", "finish_reason",
                       finish(result));
  json_t *root = json_pack("{s:s, s:s, s:I, s:s, s:[o], s:o}", "id", result->id, "object",
                           chat ? "chat.completion" : "text_completion", "created", (json_int_t)result->created,
                           "model", result->model, "choices", choice, "usage", usage(result));
  add_session(root, result);
  return dump(root);
}

char *openai_stream_event(int chat, const openai_result *result, int first) {
  json_t *choice;
  if (chat) {
    json_t *delta = json_object();
    if (first)
      json_object_set_new(delta, "role", json_string("assistant"));
    if (!result->finish_reason)
      json_object_set_new(delta, "content", json_string(result->text));
    choice = json_pack("{s:i, s:o, s:o}", "index", 0, "delta", delta, "finish_reason", finish(result));
  } else {
    choice = json_pack("{s:s, s:i, s:n, s:o}", "text", result->text, "index", 0, "logprobs", "finish_reason",
                       finish(result));
  }
  json_t *root = json_pack("{s:s, s:s, s:I, s:s, s:[o]}", "id", result->id, "object",
                           chat ? "chat.completion.chunk" : "text_completion", "created",
                           (json_int_t)result->created, "model", result->model, "choices", choice);
  if (result->finish_reason) {
    json_object_set_new(root, "usage", usage(result));
    add_session(root, result);
  }
  char *json = dump(root);
  if (!json)
    return NULL;
  size_t n = strlen(json) + 9;
  char *event = malloc(n);
  if (event)
    snprintf(event, n, "data: %s\n\n", json);
  free(json);
  return event;
}
