/* HTTP for clttt serve. Every connection has its own thread (libmicrohttpd's
 * thread-per-connection mode), so a handler may block until its job is
 * done, and a stream's reader may block until the next token: neither
 * holds up other clients. Connections are capped, bodies are capped and
 * discarded past the cap, and a stream whose client has gone (a write
 * fails, or a keep-alive comment does while queued) cancels its job. */
#include "serve_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve_openai.h"

/* A waiting stream writes an SSE comment this often: it keeps proxies
 * from timing out, and a failed write tells that the client left. */
#define KEEPALIVE_SECONDS 1

typedef struct {
  char *body;
  size_t size;
  int too_large;
} request_state;

static enum MHD_Result send_text(http_server *server, struct MHD_Connection *connection, serve_endpoint endpoint,
                                 unsigned status, const char *content_type, char *text) {
  if (!text) {
    static const char fallback[] = "{\"error\":{\"message\":\"out of host memory\",\"type\":\"server_error\","
                                   "\"param\":null,\"code\":null}}";
    status = 500;
    content_type = "application/json";
    text = malloc(sizeof fallback);
    if (!text)
      return MHD_NO;
    memcpy(text, fallback, sizeof fallback);
  }
  struct MHD_Response *response = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
  if (!response) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  if (status == 401)
    MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
  enum MHD_Result result = MHD_queue_response(connection, status, response);
  MHD_destroy_response(response);
  metrics_count_request(server->metrics, endpoint, (int)status);
  return result;
}

static enum MHD_Result send_json(http_server *server, struct MHD_Connection *connection, serve_endpoint endpoint,
                                 unsigned status, char *json) {
  return send_text(server, connection, endpoint, status, "application/json", json);
}

static enum MHD_Result send_error(http_server *server, struct MHD_Connection *connection, serve_endpoint endpoint,
                                  unsigned status, const char *message, const char *param) {
  return send_json(server, connection, endpoint, status, openai_error_body((int)status, message, param));
}

static enum MHD_Result send_method_not_allowed(http_server *server, struct MHD_Connection *connection,
                                               serve_endpoint endpoint, const char *method, const char *allowed) {
  char message[160];
  snprintf(message, sizeof message, "method %.16s is not allowed here; use %s", method, allowed);
  char *body = openai_error_body(405, message, NULL);
  if (!body)
    return MHD_NO;
  struct MHD_Response *response = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
  if (!response) {
    free(body);
    return MHD_NO;
  }
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, allowed);
  enum MHD_Result result = MHD_queue_response(connection, 405, response);
  MHD_destroy_response(response);
  metrics_count_request(server->metrics, endpoint, 405);
  return result;
}

static char *copy_text(const char *text) {
  size_t n = strlen(text) + 1;
  char *copy = malloc(n);
  if (copy)
    memcpy(copy, text, n);
  return copy;
}

/* Compares every byte whatever the first difference, so that the time a
 * wrong key takes does not tell how much of it was right. */
static int key_matches(const char *given, const char *key) {
  size_t n = strlen(key), m = strlen(given);
  unsigned char difference = (unsigned char)(n != m);
  for (size_t i = 0; i < n; i++)
    difference |= (unsigned char)(key[i] ^ (i < m ? given[i] : 0));
  return difference == 0;
}

static int authorized(http_server *server, struct MHD_Connection *connection) {
  if (!server->api_key)
    return 1;
  const char *header = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  if (!header || strncmp(header, "Bearer ", 7) != 0)
    return 0;
  return key_matches(header + 7, server->api_key);
}

/* ---- generation ------------------------------------------------------ */

typedef struct {
  http_server *server;
  job *item;
  int chat;
  char id[48];
  long created;
  size_t consumed;   /* bytes of item->text already sent */
  int first_sent, final_sent;
  char *pending;     /* an event being written out */
  size_t pending_size, pending_offset;
} stream_state;

static void fill_result(const stream_state *state, const job *item, openai_result *result, const char *text,
                        const char *finish_reason) {
  memset(result, 0, sizeof *result);
  result->id = state->id;
  result->created = state->created;
  result->model = state->server->model_id;
  result->text = text;
  result->finish_reason = finish_reason;
  result->prompt_tokens = item->prompt_tokens;
  result->completion_tokens = item->completion_tokens;
  result->session = item->session;
  result->reused_tokens = item->reused_tokens;
  result->session_reset = item->session_reset;
  result->session_position = item->session_position;
}

static void set_pending(stream_state *state, char *event) {
  free(state->pending);
  state->pending = event;
  state->pending_size = event ? strlen(event) : 0;
  state->pending_offset = 0;
}

/* The next event of a stream, under the job's lock: new text, the end, or
 * a keep-alive comment when nothing happened for a while. 0 at the very end. */
static int next_event(stream_state *state) {
  job *item = state->item;
  openai_result result;
  if (state->chat && !state->first_sent) {
    state->first_sent = 1;
    fill_result(state, item, &result, "", NULL);
    set_pending(state, openai_stream_event(1, &result, 1));
    return 1;
  }
  for (;;) {
    if (item->text_size > state->consumed) {
      fill_result(state, item, &result, item->text + state->consumed, NULL);
      state->consumed = item->text_size;
      set_pending(state, openai_stream_event(state->chat, &result, 0));
      return 1;
    }
    if (item->done) {
      if (state->final_sent)
        return 0;
      state->final_sent = 1;
      char *event = NULL;
      if (item->http_status == 200) {
        fill_result(state, item, &result, "", item->finish_reason);
        event = openai_stream_event(state->chat, &result, 0);
      } else {
        char *body = openai_error_body(item->http_status, item->error, NULL);
        size_t n = body ? strlen(body) + 9 : 0;
        event = body ? malloc(n) : NULL;
        if (event)
          snprintf(event, n, "data: %s\n\n", body);
        free(body);
      }
      static const char done[] = "data: [DONE]\n\n";
      size_t n = (event ? strlen(event) : 0) + sizeof done;
      char *both = malloc(n);
      if (both)
        snprintf(both, n, "%s%s", event ? event : "", done);
      free(event);
      set_pending(state, both);
      return 1;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += KEEPALIVE_SECONDS;
    if (pthread_cond_timedwait(&item->changed, &item->lock, &deadline) == ETIMEDOUT && !item->done &&
        item->text_size == state->consumed) {
      set_pending(state, copy_text(": keep-alive\n\n"));
      return 1;
    }
  }
}

static ssize_t stream_reader(void *cls, uint64_t position, char *buffer, size_t max) {
  (void)position;
  stream_state *state = cls;
  if (state->pending_offset >= state->pending_size) {
    pthread_mutex_lock(&state->item->lock);
    int more = next_event(state);
    pthread_mutex_unlock(&state->item->lock);
    if (!more)
      return MHD_CONTENT_READER_END_OF_STREAM;
    if (!state->pending)
      return MHD_CONTENT_READER_END_WITH_ERROR;
  }
  size_t n = state->pending_size - state->pending_offset;
  if (n > max)
    n = max;
  memcpy(buffer, state->pending + state->pending_offset, n);
  state->pending_offset += n;
  return (ssize_t)n;
}

/* Called when the response is done with: finished, or the client is gone. */
static void stream_free(void *cls) {
  stream_state *state = cls;
  engine_cancel(state->server->engine, state->item);
  job_release(state->item);
  free(state->pending);
  free(state);
}

static enum MHD_Result handle_generation(http_server *server, struct MHD_Connection *connection, int chat,
                                         request_state *request_body) {
  serve_endpoint endpoint = chat ? ENDPOINT_CHAT : ENDPOINT_COMPLETIONS;
  char error[768], param[64];
  job *item = job_create(JOB_GENERATE);
  if (!item)
    return send_error(server, connection, endpoint, 500, "out of host memory", NULL);
  int status = openai_parse_request(request_body->body ? request_body->body : "", request_body->size, chat,
                                    server->chat, &item->request, error, sizeof error, param, sizeof param);
  if (status) {
    job_release(item);
    return send_error(server, connection, endpoint, (unsigned)status, error, param);
  }
  openai_request *request = &item->request;
  snprintf(item->session, sizeof item->session, "%s", request->session);
  if (request->prompt_ids) {
    for (int i = 0; i < request->prompt_id_count; i++)
      if (request->prompt_ids[i] >= server->vocab_size) {
        snprintf(error, sizeof error, "prompt[%d] is %d; the model's vocabulary has %d tokens", i,
                 request->prompt_ids[i], server->vocab_size);
        job_release(item);
        return send_error(server, connection, endpoint, 400, error, "prompt");
      }
    item->tokens = malloc((size_t)request->prompt_id_count * sizeof *item->tokens);
    if (item->tokens)
      memcpy(item->tokens, request->prompt_ids, (size_t)request->prompt_id_count * sizeof *item->tokens);
    item->token_count = request->prompt_id_count;
  } else if (clttt_tokenizer_encode(server->tokenizer, request->prompt, request->add_bos, &item->tokens,
                                    &item->token_count) != CLTTT_SUCCESS) {
    snprintf(error, sizeof error, "tokenizing the prompt failed: %s", clttt_last_error());
    job_release(item);
    return send_error(server, connection, endpoint, 500, error, NULL);
  }
  const char *prompt_param = chat ? "messages" : "prompt";
  if (item->token_count == 0) {
    job_release(item);
    return send_error(server, connection, endpoint, 400, "the prompt is empty", prompt_param);
  }
  if (item->token_count >= server->context) {
    snprintf(error, sizeof error,
             "the prompt has %d tokens; the context holds %d (--ctx), which must leave room for one more",
             item->token_count, server->context);
    job_release(item);
    return send_error(server, connection, endpoint, 400, error, prompt_param);
  }

  stream_state *state = calloc(1, sizeof *state);
  if (!state) {
    job_release(item);
    return send_error(server, connection, endpoint, 500, "out of host memory", NULL);
  }
  state->server = server;
  state->item = item;
  state->chat = chat;
  state->created = (long)time(NULL);
  snprintf(state->id, sizeof state->id, "%s-%llu", chat ? "chatcmpl" : "cmpl",
           __atomic_add_fetch(&server->next_id, 1, __ATOMIC_RELAXED));
  if (engine_submit(server->engine, item) != 0) {
    free(state);
    job_release(item);
    return send_error(server, connection, endpoint, 503, "all slots are busy and the queue is full: retry later",
                      NULL);
  }

  if (request->stream) {
    struct MHD_Response *response =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, state, stream_free);
    if (!response) {
      stream_free(state);
      return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    enum MHD_Result result = MHD_queue_response(connection, 200, response);
    MHD_destroy_response(response);
    metrics_count_request(server->metrics, endpoint, 200);
    return result;
  }

  pthread_mutex_lock(&item->lock);
  while (!item->done)
    pthread_cond_wait(&item->changed, &item->lock);
  pthread_mutex_unlock(&item->lock);
  enum MHD_Result result;
  if (item->http_status != 200) {
    result = send_error(server, connection, endpoint, (unsigned)item->http_status, item->error, NULL);
  } else {
    openai_result response;
    fill_result(state, item, &response, item->text ? item->text : "", item->finish_reason);
    result = send_json(server, connection, endpoint, 200, openai_response_body(chat, &response));
  }
  free(state);
  job_release(item);
  return result;
}

/* ---- sessions --------------------------------------------------------- */

static enum MHD_Result handle_session_operation(http_server *server, struct MHD_Connection *connection,
                                                job_kind kind, const char *name) {
  job *item = job_create(kind);
  if (!item)
    return send_error(server, connection, ENDPOINT_SESSIONS, 500, "out of host memory", NULL);
  snprintf(item->session, sizeof item->session, "%s", name);
  if (engine_submit(server->engine, item) != 0) {
    job_release(item);
    return send_error(server, connection, ENDPOINT_SESSIONS, 503, "the queue is full: retry later", NULL);
  }
  pthread_mutex_lock(&item->lock);
  while (!item->done)
    pthread_cond_wait(&item->changed, &item->lock);
  pthread_mutex_unlock(&item->lock);
  enum MHD_Result result;
  if (item->http_status == 200) {
    json_t *root = json_pack("{s:s, s:s, s:b}", "id", name, "object", "session",
                             kind == JOB_DELETE ? "deleted" : "reset", 1);
    char *body = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    result = send_json(server, connection, ENDPOINT_SESSIONS, 200, body);
  } else {
    char message[700];
    snprintf(message, sizeof message, "session '%s': %s", name, item->error);
    result = send_error(server, connection, ENDPOINT_SESSIONS, (unsigned)item->http_status, message, NULL);
  }
  job_release(item);
  return result;
}

/* ---- routing ---------------------------------------------------------- */

static enum MHD_Result route(http_server *server, struct MHD_Connection *connection, const char *url,
                             const char *method, request_state *state) {
  int get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0, del = strcmp(method, "DELETE") == 0;
  serve_endpoint endpoint = ENDPOINT_OTHER;
  const char *allowed = NULL;
  int method_ok = 0;
  char name[SESSION_NAME_MAX + 2] = "";
  int session_kind = -1;
  if (strcmp(url, "/health") == 0) {
    endpoint = ENDPOINT_HEALTH, allowed = "GET", method_ok = get;
  } else if (strcmp(url, "/v1/models") == 0) {
    endpoint = ENDPOINT_MODELS, allowed = "GET", method_ok = get;
  } else if (strcmp(url, "/v1/completions") == 0) {
    endpoint = ENDPOINT_COMPLETIONS, allowed = "POST", method_ok = post;
  } else if (strcmp(url, "/v1/chat/completions") == 0) {
    endpoint = ENDPOINT_CHAT, allowed = "POST", method_ok = post;
  } else if (strcmp(url, "/metrics") == 0) {
    endpoint = ENDPOINT_METRICS, allowed = "GET", method_ok = get;
  } else if (strcmp(url, "/v1/sessions") == 0) {
    endpoint = ENDPOINT_SESSIONS, allowed = "GET", method_ok = get;
  } else if (strncmp(url, "/v1/sessions/", 13) == 0) {
    endpoint = ENDPOINT_SESSIONS;
    const char *rest = url + 13;
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n <= SESSION_NAME_MAX) {
      memcpy(name, rest, n);
      name[n] = '\0';
    } else {
      snprintf(name, sizeof name, "%s", "?");
    }
    if (slash && strcmp(slash, "/reset") == 0)
      session_kind = JOB_RESET, allowed = "POST", method_ok = post;
    else if (!slash)
      session_kind = JOB_DELETE, allowed = "DELETE", method_ok = del;
  }
  /* A bad name is refused as such whatever follows it: "../x" decoded
   * from %2F must not look like a mere unknown path. */
  if (endpoint == ENDPOINT_SESSIONS && strncmp(url, "/v1/sessions/", 13) == 0 && !session_name_valid(name) &&
      authorized(server, connection))
    return send_error(server, connection, endpoint, 400,
                      "session names are 1 to 64 characters from A-Z a-z 0-9 _ -", NULL);
  if (!allowed)
    return send_error(server, connection, ENDPOINT_OTHER, 404, "no such endpoint", NULL);
  if (!method_ok)
    return send_method_not_allowed(server, connection, endpoint, method, allowed);
  if (endpoint != ENDPOINT_HEALTH && !authorized(server, connection))
    return send_error(server, connection, endpoint, 401,
                      "a valid API key is needed: send 'Authorization: Bearer KEY'", NULL);
  if (state->too_large) {
    char message[128];
    snprintf(message, sizeof message, "the request body is larger than %zu bytes", server->max_body);
    return send_error(server, connection, endpoint, 413, message, NULL);
  }
  switch (endpoint) {
  case ENDPOINT_HEALTH:
    return send_json(server, connection, endpoint, 200, copy_text("{\"status\":\"ok\"}"));
  case ENDPOINT_MODELS: {
    json_t *root = json_pack("{s:s, s:[{s:s, s:s, s:i, s:s, s:i, s:s}]}", "object", "list", "data", "id",
                             server->model_id, "object", "model", "created", 0, "owned_by", "clttt",
                             "context_length", server->context, "chat_template", chat_template_name(server->chat));
    char *body = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return send_json(server, connection, endpoint, 200, body);
  }
  case ENDPOINT_COMPLETIONS:
  case ENDPOINT_CHAT:
    return handle_generation(server, connection, endpoint == ENDPOINT_CHAT, state);
  case ENDPOINT_METRICS: {
    serve_gauges gauges;
    engine_gauges(server->engine, &gauges);
    /* Counted first, so that a scrape sees itself. */
    metrics_count_request(server->metrics, endpoint, 200);
    char *text = metrics_render(server->metrics, &gauges);
    struct MHD_Response *response =
        text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!response) {
      free(text);
      return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4");
    enum MHD_Result result = MHD_queue_response(connection, 200, response);
    MHD_destroy_response(response);
    return result;
  }
  case ENDPOINT_SESSIONS:
    if (session_kind < 0)
      return send_json(server, connection, endpoint, 200, engine_list_sessions(server->engine));
    if (!session_name_valid(name))
      return send_error(server, connection, endpoint, 400,
                        "session names are 1 to 64 characters from A-Z a-z 0-9 _ -", NULL);
    return handle_session_operation(server, connection, (job_kind)session_kind, name);
  default:
    return send_error(server, connection, endpoint, 404, "no such endpoint", NULL);
  }
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *connection, const char *url,
                                      const char *method, const char *version, const char *upload_data,
                                      size_t *upload_data_size, void **con_cls) {
  (void)version;
  http_server *server = cls;
  request_state *state = *con_cls;
  if (!state) {
    state = calloc(1, sizeof *state);
    if (!state)
      return MHD_NO;
    *con_cls = state;
    return MHD_YES;
  }
  if (*upload_data_size) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (state->too_large || state->size + n > server->max_body) {
      /* Past the cap the body is read and dropped: the 413 goes out once
       * the client has finished sending. */
      state->too_large = 1;
      free(state->body);
      state->body = NULL;
      return MHD_YES;
    }
    char *grown = realloc(state->body, state->size + n + 1);
    if (!grown)
      return MHD_NO;
    state->body = grown;
    memcpy(state->body + state->size, upload_data, n);
    state->size += n;
    state->body[state->size] = '\0';
    return MHD_YES;
  }
  return route(server, connection, url, method, state);
}

static void request_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                              enum MHD_RequestTerminationCode code) {
  (void)cls, (void)connection, (void)code;
  request_state *state = *con_cls;
  if (state) {
    free(state->body);
    free(state);
  }
  *con_cls = NULL;
}

static void http_log(void *cls, const char *format, va_list list) {
  (void)cls;
  fprintf(stderr, "clttt serve: http: ");
  vfprintf(stderr, format, list);
}

int http_start(http_server *server, const char *host, int port, unsigned connection_limit, char *error,
               size_t error_size) {
  struct addrinfo hints, *address = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  char service[16];
  snprintf(service, sizeof service, "%d", port);
  int status = getaddrinfo(host, service, &hints, &address);
  if (status != 0 || !address) {
    snprintf(error, error_size, "cannot resolve --host %s: %s", host, gai_strerror(status));
    return 0;
  }
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                   MHD_USE_ERROR_LOG | (address->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
  server->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, access_handler, server,
                                    MHD_OPTION_EXTERNAL_LOGGER, http_log, server,
                                    MHD_OPTION_SOCK_ADDR, address->ai_addr,
                                    MHD_OPTION_CONNECTION_LIMIT, connection_limit,
                                    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                                    MHD_OPTION_NOTIFY_COMPLETED, request_completed, server,
                                    MHD_OPTION_END);
  freeaddrinfo(address);
  if (!server->daemon) {
    snprintf(error, error_size, "cannot listen on %s:%d: %s", host, port, strerror(errno));
    return 0;
  }
  return 1;
}

int http_port(const http_server *server) {
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT);
  return info ? info->port : 0;
}

void http_quiesce(http_server *server) {
  if (server->daemon) {
    MHD_socket listening = MHD_quiesce_daemon(server->daemon);
    if (listening != MHD_INVALID_SOCKET)
      close(listening);
  }
}

void http_stop(http_server *server) {
  if (server->daemon)
    MHD_stop_daemon(server->daemon);
  server->daemon = NULL;
}
