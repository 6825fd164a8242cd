/* Chat templates rendered in C. What each family's Jinja template produces
 * for system, user and assistant messages is reproduced here and checked
 * against transformers' apply_chat_template output (tests/chat/). */
#include "serve_chat.h"

#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  char *data;
  size_t size, capacity;
  int failed;
} text_buffer;

static void append_n(text_buffer *buffer, const char *text, size_t n) {
  if (buffer->failed)
    return;
  if (buffer->size + n + 1 > buffer->capacity) {
    size_t capacity = buffer->capacity ? buffer->capacity : 256;
    while (capacity < buffer->size + n + 1)
      capacity *= 2;
    char *grown = realloc(buffer->data, capacity);
    if (!grown) {
      buffer->failed = 1;
      return;
    }
    buffer->data = grown;
    buffer->capacity = capacity;
  }
  memcpy(buffer->data + buffer->size, text, n);
  buffer->size += n;
  buffer->data[buffer->size] = '\0';
}

static void append(text_buffer *buffer, const char *text) { append_n(buffer, text, strlen(text)); }

/* Jinja's trim and Python's str.strip(): ASCII whitespace at both ends. */
static void append_trimmed(text_buffer *buffer, const char *text) {
  const char *end = text + strlen(text);
  while (text < end && isspace((unsigned char)*text))
    text++;
  while (end > text && isspace((unsigned char)end[-1]))
    end--;
  append_n(buffer, text, (size_t)(end - text));
}

static char *duplicate(const char *text) {
  size_t n = strlen(text) + 1;
  char *copy = malloc(n);
  if (copy)
    memcpy(copy, text, n);
  return copy;
}

/* A string from the template's own text: the one that starts right after
 * `marker` (which ends with its opening quote) and ends at the same quote. */
static char *quoted_after(const char *text, const char *marker) {
  const char *at = strstr(text, marker);
  if (!at)
    return NULL;
  at += strlen(marker);
  char quote = at[-1];
  const char *end = strchr(at, quote);
  if (!end)
    return NULL;
  char *value = malloc((size_t)(end - at) + 1);
  if (value) {
    memcpy(value, at, (size_t)(end - at));
    value[end - at] = '\0';
  }
  return value;
}

void chat_template_from_string(chat_template *tmpl, const char *text, const char *bos_token) {
  memset(tmpl, 0, sizeof *tmpl);
  tmpl->bos_token = duplicate(bos_token ? bos_token : "");
  if (!text) {
    tmpl->kind = CHAT_TEMPLATE_NONE;
    snprintf(tmpl->description, sizeof tmpl->description, "none");
    return;
  }
  if (strstr(text, "<|im_start|>")) {
    tmpl->kind = CHAT_TEMPLATE_CHATML;
    tmpl->strip_reasoning = strstr(text, "</think>") != NULL;
    /* Qwen2.5 falls back to its own system message when none is given; the
     * sentence is in the template, in single quotes. */
    const char *qwen = strstr(text, "You are Qwen, created by Alibaba Cloud");
    if (qwen) {
      const char *end = qwen;
      while (*end && *end != '\'' && *end != '"' && *end != '<' && *end != '\\')
        end++;
      tmpl->default_system = malloc((size_t)(end - qwen) + 1);
      if (tmpl->default_system) {
        memcpy(tmpl->default_system, qwen, (size_t)(end - qwen));
        tmpl->default_system[end - qwen] = '\0';
      }
    }
    snprintf(tmpl->description, sizeof tmpl->description, "ChatML");
  } else if (strstr(text, "<|start_header_id|>")) {
    tmpl->kind = CHAT_TEMPLATE_LLAMA3;
    if (strstr(text, "Cutting Knowledge Date")) {
      tmpl->knowledge_header = 1;
      tmpl->today_date = strstr(text, "strftime_now") != NULL;
      tmpl->date_string = quoted_after(text, "date_string = \"");
      if (!tmpl->date_string)
        tmpl->date_string = duplicate("26 Jul 2024");
    }
    snprintf(tmpl->description, sizeof tmpl->description, "LLaMA-3");
  } else {
    tmpl->kind = CHAT_TEMPLATE_UNKNOWN;
    /* Its first characters, on one line, so that a user can tell which one. */
    size_t n = 0;
    for (const char *c = text; *c && n < 60; c++)
      tmpl->description[n++] = (*c == '\n' || *c == '\r' || *c == '\t') ? ' ' : *c;
    tmpl->description[n] = '\0';
    if (strlen(text) > n && n + 4 < sizeof tmpl->description)
      strcat(tmpl->description, "...");
  }
}

/* bos_token is a string or, in older files, {"content": "..."}. */
static const char *token_text(json_t *value) {
  if (json_is_object(value))
    value = json_object_get(value, "content");
  return json_is_string(value) ? json_string_value(value) : NULL;
}

int chat_template_load(chat_template *tmpl, const char *model_dir, char *error, size_t error_size) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir);
  FILE *file = fopen(path, "rb");
  if (!file) {
    chat_template_from_string(tmpl, NULL, NULL);
    return 1;
  }
  fclose(file);
  json_error_t json_error;
  json_t *root = json_load_file(path, 0, &json_error);
  if (!root || !json_is_object(root)) {
    snprintf(error, error_size, "%s: %s (line %d)", path, root ? "not a JSON object" : json_error.text,
             json_error.line);
    json_decref(root);
    return 0;
  }
  json_t *value = json_object_get(root, "chat_template");
  const char *text = json_is_string(value) ? json_string_value(value) : NULL;
  /* Some files hold several named templates; "default" is the chat one. */
  if (json_is_array(value)) {
    size_t index;
    json_t *entry;
    json_array_foreach(value, index, entry) {
      const char *name = json_string_value(json_object_get(entry, "name"));
      if (name && strcmp(name, "default") == 0)
        text = json_string_value(json_object_get(entry, "template"));
    }
  }
  chat_template_from_string(tmpl, text, token_text(json_object_get(root, "bos_token")));
  json_decref(root);
  return 1;
}

void chat_template_free(chat_template *tmpl) {
  free(tmpl->bos_token);
  free(tmpl->default_system);
  free(tmpl->date_string);
  memset(tmpl, 0, sizeof *tmpl);
}

const char *chat_template_name(const chat_template *tmpl) {
  switch (tmpl->kind) {
  case CHAT_TEMPLATE_CHATML: return "ChatML";
  case CHAT_TEMPLATE_LLAMA3: return "LLaMA-3";
  case CHAT_TEMPLATE_NONE: return "none";
  default: return "unknown";
  }
}

static int fail(char *error, size_t error_size, const char *format, ...) {
  va_list list;
  va_start(list, format);
  vsnprintf(error, error_size, format, list);
  va_end(list);
  return 0;
}

static int known_role(const char *role) {
  return strcmp(role, "system") == 0 || strcmp(role, "user") == 0 || strcmp(role, "assistant") == 0;
}

/* Qwen3's template drops the reasoning of earlier assistant turns: only
 * what follows the last </think>, without leading newlines, is kept. */
static const char *after_reasoning(const char *content) {
  const char *end = NULL;
  for (const char *at = strstr(content, "</think>"); at; at = strstr(at + 1, "</think>"))
    end = at;
  if (!end)
    return content;
  end += strlen("</think>");
  while (*end == '\n')
    end++;
  return end;
}

static void render_chatml(text_buffer *out, const chat_template *tmpl, const chat_message *messages, int count,
                          int add_generation_prompt) {
  int first = 0;
  if (count > 0 && strcmp(messages[0].role, "system") == 0) {
    append(out, "<|im_start|>system\n");
    append(out, messages[0].content);
    append(out, "<|im_end|>\n");
    first = 1;
  } else if (tmpl->default_system) {
    append(out, "<|im_start|>system\n");
    append(out, tmpl->default_system);
    append(out, "<|im_end|>\n");
  }
  int last_user = count - 1;
  while (last_user >= 0 && strcmp(messages[last_user].role, "user") != 0)
    last_user--;
  for (int i = first; i < count; i++) {
    append(out, "<|im_start|>");
    append(out, messages[i].role);
    append(out, "\n");
    if (tmpl->strip_reasoning && strcmp(messages[i].role, "assistant") == 0 && i < last_user)
      append(out, after_reasoning(messages[i].content));
    else
      append(out, messages[i].content);
    append(out, "<|im_end|>\n");
  }
  if (add_generation_prompt)
    append(out, "<|im_start|>assistant\n");
}

static void render_llama3(text_buffer *out, const chat_template *tmpl, const chat_message *messages, int count,
                          int add_generation_prompt) {
  append(out, tmpl->bos_token);
  int first = 0;
  if (tmpl->knowledge_header) {
    /* LLaMA-3.1/3.2 always open with a system turn carrying the dates. */
    char date[64];
    if (tmpl->today_date) {
      time_t now = time(NULL);
      struct tm local;
      localtime_r(&now, &local);
      strftime(date, sizeof date, "%d %b %Y", &local);
    } else {
      snprintf(date, sizeof date, "%s", tmpl->date_string);
    }
    append(out, "<|start_header_id|>system<|end_header_id|>\n\n");
    append(out, "Cutting Knowledge Date: December 2023\nToday Date: ");
    append(out, date);
    append(out, "\n\n");
    if (count > 0 && strcmp(messages[0].role, "system") == 0) {
      append_trimmed(out, messages[0].content);
      first = 1;
    }
    append(out, "<|eot_id|>");
  }
  for (int i = first; i < count; i++) {
    append(out, "<|start_header_id|>");
    append(out, messages[i].role);
    append(out, "<|end_header_id|>\n\n");
    append_trimmed(out, messages[i].content);
    append(out, "<|eot_id|>");
  }
  if (add_generation_prompt)
    append(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

char *chat_template_render(const chat_template *tmpl, const chat_message *messages, int count,
                           int add_generation_prompt, char *error, size_t error_size) {
  if (tmpl->kind == CHAT_TEMPLATE_NONE) {
    fail(error, error_size, "this model has no chat template (no chat_template in tokenizer_config.json): "
                            "use /v1/completions");
    return NULL;
  }
  if (tmpl->kind == CHAT_TEMPLATE_UNKNOWN) {
    fail(error, error_size, "the model's chat template is not one clttt renders (ChatML or LLaMA-3): '%s'",
         tmpl->description);
    return NULL;
  }
  for (int i = 0; i < count; i++)
    if (!known_role(messages[i].role)) {
      fail(error, error_size, "messages[%d]: role '%s' is not supported (system, user or assistant)", i,
           messages[i].role);
      return NULL;
    }
  text_buffer out = {0};
  append(&out, "");
  if (tmpl->kind == CHAT_TEMPLATE_CHATML)
    render_chatml(&out, tmpl, messages, count, add_generation_prompt);
  else
    render_llama3(&out, tmpl, messages, count, add_generation_prompt);
  if (out.failed) {
    free(out.data);
    fail(error, error_size, "out of host memory");
    return NULL;
  }
  return out.data;
}
