/* clttt serve end to end: $CLTTT_BUILD_DIR/clttt serve runs as a child
 * process on a free loopback port with stories260K, and this file talks
 * HTTP/1.1 to it over plain sockets. Every wait is bounded; the server is
 * always killed in teardown. */
/* strcasestr */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

#define API_KEY "test-key"
#define IO_TIMEOUT_SECONDS 60

typedef struct {
  pid_t pid;
  int port;
  char log[700];
} server_process;

static char scratch[512];
static server_process shared_server;

static const char *stories(void) { return test_environment("CLTTT_STORIES_DIR", "tests/models/stories260K"); }

/* Starts `clttt serve -m stories260K --port 0 EXTRA...` and reads the port it
 * prints; 0 when it did not come up within a minute. */
static int start_server(server_process *server, const char *log_name, const char *const *extra) {
  snprintf(server->log, sizeof server->log, "%s/%s", scratch, log_name);
  char program[600];
  snprintf(program, sizeof program, "%s/clttt", test_environment("CLTTT_BUILD_DIR", "."));
  const char *argv[32] = {program, "serve", "-m", stories(), "--port", "0"};
  int argc = 6;
  for (int i = 0; extra && extra[i] && argc < 31; i++)
    argv[argc++] = extra[i];
  argv[argc] = NULL;
  server->port = 0;
  server->pid = fork();
  if (server->pid == 0) {
    int log = open(server->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(log, 2);
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    /* LeakSanitizer (GCC 12) crashes scanning the dynamic TLS that PoCL's
     * threads leave behind in this process; leaks are still checked, with
     * thread-local storage not counted as a root. */
    const char *lsan = getenv("LSAN_OPTIONS");
    char options[1024];
    snprintf(options, sizeof options, "%s%suse_tls=0", lsan ? lsan : "", lsan ? ":" : "");
    setenv("LSAN_OPTIONS", options, 1);
    execv(program, (char *const *)argv);
    _exit(127);
  }
  for (int i = 0; i < 600 && !server->port; i++) {
    usleep(100000);
    char *text = test_read_file(server->log, NULL);
    const char *at = text ? strstr(text, "listening on http://127.0.0.1:") : NULL;
    if (at)
      server->port = atoi(at + strlen("listening on http://127.0.0.1:"));
    free(text);
    int status;
    if (waitpid(server->pid, &status, WNOHANG) == server->pid) {
      server->pid = 0;
      break;
    }
  }
  return server->port;
}

/* SIGTERM, then up to 60 s for a clean exit (SIGKILL after): the exit code,
 * -1 when it had to be killed. */
static int stop_server(server_process *server, int signal_number) {
  if (server->pid <= 0)
    return -1;
  kill(server->pid, signal_number);
  for (int i = 0; i < 600; i++) {
    int status;
    if (waitpid(server->pid, &status, WNOHANG) == server->pid) {
      server->pid = 0;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    usleep(100000);
  }
  kill(server->pid, SIGKILL);
  waitpid(server->pid, NULL, 0);
  server->pid = 0;
  return -1;
}

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  struct timeval timeout = {IO_TIMEOUT_SECONDS, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_port = htons((uint16_t)port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_msg(connect(fd, (struct sockaddr *)&address, sizeof address) == 0, "connect: %s", strerror(errno));
  return fd;
}

static void send_all(int fd, const char *data, size_t size) {
  while (size) {
    ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0)
      return; /* the server may answer (413) before reading everything */
    data += n;
    size -= (size_t)n;
  }
}

typedef struct {
  int status;
  char *body; /* de-chunked */
} http_response;

static void dechunk(char *body) {
  char *in = body, *out = body;
  for (;;) {
    char *end = NULL;
    long size = strtol(in, &end, 16);
    if (end == in || size <= 0)
      break;
    in = strstr(end, "\r\n");
    if (!in)
      break;
    in += 2;
    memmove(out, in, (size_t)size);
    out += size;
    in += size + 2;
  }
  *out = '\0';
}

/* One request on its own connection (Connection: close), read to the end. */
static http_response request_with(int port, const char *method, const char *path, const char *key,
                                  const char *body, size_t body_size) {
  int fd = connect_to(port);
  char head[1024];
  int n = snprintf(head, sizeof head,
                   "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%sContent-Length: %zu\r\n"
                   "Content-Type: application/json\r\n\r\n",
                   method, path, key ? "Authorization: Bearer " : "", key ? key : "", key ? "\r\n" : "",
                   body ? body_size : 0);
  send_all(fd, head, (size_t)n);
  if (body)
    send_all(fd, body, body_size);
  size_t size = 0, capacity = 65536;
  char *data = malloc(capacity);
  for (;;) {
    if (size + 4096 + 1 > capacity)
      data = realloc(data, capacity *= 2);
    ssize_t got = recv(fd, data + size, 4096, 0);
    if (got <= 0)
      break;
    size += (size_t)got;
  }
  close(fd);
  data[size] = '\0';
  http_response response = {0, NULL};
  sscanf(data, "HTTP/1.%*d %d", &response.status);
  char *start = strstr(data, "\r\n\r\n");
  response.body = strdup(start ? start + 4 : "");
  if (start) {
    *start = '\0';
    if (strcasestr(data, "transfer-encoding: chunked"))
      dechunk(response.body);
  }
  free(data);
  return response;
}

static http_response request(int port, const char *method, const char *path, const char *body) {
  return request_with(port, method, path, API_KEY, body, body ? strlen(body) : 0);
}

static json_t *json_of(const http_response *response) {
  json_error_t error;
  json_t *root = json_loads(response->body, 0, &error);
  ck_assert_msg(root != NULL, "not JSON (%s): %s", error.text, response->body);
  return root;
}

/* The completion's text, after checking the status. */
static char *complete(int port, const char *body, json_t **whole) {
  http_response response = request(port, "POST", "/v1/completions", body);
  ck_assert_msg(response.status == 200, "%d: %s", response.status, response.body);
  json_t *root = json_of(&response);
  const char *text = json_string_value(json_object_get(json_array_get(json_object_get(root, "choices"), 0), "text"));
  ck_assert_ptr_nonnull(text);
  char *copy = strdup(text);
  if (whole)
    *whole = root;
  else
    json_decref(root);
  free(response.body);
  return copy;
}

static char *completion_body(const char *prompt, int max_tokens, const char *extra) {
  json_t *root = json_pack("{s:s, s:i, s:i}", "prompt", prompt, "max_tokens", max_tokens, "temperature", 0);
  char *text = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  if (extra) {
    char *joined = malloc(strlen(text) + strlen(extra) + 4);
    text[strlen(text) - 1] = '\0';
    sprintf(joined, "%s,%s}", text, extra);
    free(text);
    return joined;
  }
  return text;
}

static void setup_shared(void) {
  test_make_temporary_directory(scratch, sizeof scratch);
  static const char *const extra[] = {"--slots", "4", "--api-key", API_KEY, NULL};
  start_server(&shared_server, "shared.log", extra);
}

static void teardown_shared(void) {
  stop_server(&shared_server, SIGKILL);
  test_remove_directory(scratch);
}

START_TEST(test_health_models_metrics) {
  ck_assert_msg(shared_server.port > 0, "the server did not start: see its log");
  http_response health = request_with(shared_server.port, "GET", "/health", NULL, NULL, 0);
  ck_assert_int_eq(health.status, 200);
  ck_assert(strstr(health.body, "\"ok\"") != NULL);
  http_response models = request(shared_server.port, "GET", "/v1/models", NULL);
  ck_assert_int_eq(models.status, 200);
  ck_assert_msg(strstr(models.body, "\"stories260K\"") != NULL, "%s", models.body);
  http_response metrics = request(shared_server.port, "GET", "/metrics", NULL);
  ck_assert_int_eq(metrics.status, 200);
  ck_assert(strstr(metrics.body, "clttt_requests_total{endpoint=\"health\",code=\"200\"}") != NULL);
  ck_assert(strstr(metrics.body, "clttt_queue_depth") != NULL);
  free(health.body);
  free(models.body);
  free(metrics.body);
}
END_TEST

START_TEST(test_completion_and_stream) {
  char *body = completion_body("Once upon a time", 12, NULL);
  json_t *root = NULL;
  char *text = complete(shared_server.port, body, &root);
  ck_assert_msg(strlen(text) > 0, "empty completion");
  json_t *usage = json_object_get(root, "usage");
  ck_assert_int_eq(json_integer_value(json_object_get(usage, "completion_tokens")), 12);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(root, "choices"), 0),
                                                      "finish_reason")),
                   "length");
  json_decref(root);
  /* Greedy: the same prompt gives the same text, streamed or not. */
  char *streamed_body = completion_body("Once upon a time", 12, "\"stream\":true");
  http_response stream = request(shared_server.port, "POST", "/v1/completions", streamed_body);
  ck_assert_int_eq(stream.status, 200);
  char joined[4096] = "";
  int events = 0;
  for (char *line = strtok(stream.body, "\n"); line; line = strtok(NULL, "\n")) {
    if (strncmp(line, "data: ", 6) != 0 || strcmp(line, "data: [DONE]") == 0)
      continue;
    json_t *event = json_loads(line + 6, 0, NULL);
    ck_assert_msg(event != NULL, "bad event: %s", line);
    const char *piece =
        json_string_value(json_object_get(json_array_get(json_object_get(event, "choices"), 0), "text"));
    ck_assert_ptr_nonnull(piece);
    strncat(joined, piece, sizeof joined - strlen(joined) - 1);
    json_decref(event);
    events++;
  }
  ck_assert_msg(events >= 2, "%d events", events);
  ck_assert_str_eq(joined, text);
  free(stream.body);
  free(streamed_body);
  free(body);
  free(text);
}
END_TEST

START_TEST(test_disconnect_frees_the_slot) {
  /* A long stream whose client leaves after its first bytes. */
  char *body = completion_body("Once upon a time", 400, "\"stream\":true,\"session\":\"gone\"");
  int fd = connect_to(shared_server.port);
  char head[512];
  int n = snprintf(head, sizeof head,
                   "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " API_KEY
                   "\r\nContent-Length: %zu\r\n\r\n",
                   strlen(body));
  send_all(fd, head, (size_t)n);
  send_all(fd, body, strlen(body));
  char buffer[256];
  ck_assert_int_gt(recv(fd, buffer, sizeof buffer, 0), 0);
  close(fd);
  int counted = 0;
  for (int i = 0; i < 100 && !counted; i++) {
    http_response metrics = request(shared_server.port, "GET", "/metrics", NULL);
    counted = strstr(metrics.body, "clttt_client_disconnects_total 0\n") == NULL;
    free(metrics.body);
    if (!counted)
      usleep(100000);
  }
  ck_assert_msg(counted, "the server did not notice the client leaving");
  char *after = completion_body("The dog", 4, "\"session\":\"gone\"");
  free(complete(shared_server.port, after, NULL));
  free(after);
  free(body);
}
END_TEST

static void expect_status(int port, const char *method, const char *path, const char *key, const char *body,
                          int expected, const char *param) {
  http_response response = request_with(port, method, path, key, body, body ? strlen(body) : 0);
  ck_assert_msg(response.status == expected, "%s %s %s: %d, expected %d: %s", method, path, body ? body : "",
                response.status, expected, response.body);
  json_t *root = json_of(&response);
  json_t *error = json_object_get(root, "error");
  ck_assert_msg(json_is_string(json_object_get(error, "message")), "no OpenAI error object: %s", response.body);
  ck_assert_msg(json_is_string(json_object_get(error, "type")), "no error type: %s", response.body);
  if (param)
    ck_assert_str_eq(json_string_value(json_object_get(error, "param")), param);
  json_decref(root);
  free(response.body);
}

START_TEST(test_bad_requests) {
  const int port = shared_server.port;
  expect_status(port, "POST", "/v1/completions", API_KEY, "{\"prompt\": ", 400, NULL);
  expect_status(port, "POST", "/v1/completions", API_KEY, "[1, 2]", 400, NULL);
  expect_status(port, "POST", "/v1/completions", API_KEY, "{\"prompt\": 7}", 400, "prompt");
  expect_status(port, "POST", "/v1/completions", API_KEY, "{\"prompt\": \"a\", \"max_tokens\": \"9\"}", 400,
                "max_tokens");
  expect_status(port, "POST", "/v1/completions", API_KEY, "{\"prompt\": \"a\", \"stream\": 1}", 400, "stream");
  expect_status(port, "POST", "/v1/completions", API_KEY, "{\"prompt\": \"a\", \"temperature\": 3}", 400,
                "temperature");
  expect_status(port, "POST", "/v1/completions", API_KEY, "{\"prompt\": \"a\", \"top_p\": 0}", 400, "top_p");
  expect_status(port, "POST", "/v1/completions", API_KEY, "{\"prompt\": \"a\", \"max_tokens\": 0}", 400,
                "max_tokens");
  expect_status(port, "POST", "/v1/completions", API_KEY, "{\"prompt\": \"a\", \"stop\": [1]}", 400, "stop");
  expect_status(port, "POST", "/v1/completions", API_KEY, "{\"prompt\": [1, 99999]}", 400, "prompt");
  expect_status(port, "POST", "/v1/completions", API_KEY, "{\"prompt\": \"a\", \"session\": \"../x\"}", 400,
                "session");
  /* stories260K has no chat template: a clear error, not a made-up prompt. */
  expect_status(port, "POST", "/v1/chat/completions", API_KEY,
                "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 400, "messages");
  expect_status(port, "POST", "/v1/chat/completions", API_KEY, "{\"messages\": []}", 400, "messages");
  /* Longer than the 512-token context. */
  char *long_prompt = malloc(8000);
  strcpy(long_prompt, "{\"prompt\": \"");
  for (int i = 0; i < 1500; i++)
    strcat(long_prompt, "a b ");
  strcat(long_prompt, "\"}");
  expect_status(port, "POST", "/v1/completions", API_KEY, long_prompt, 400, "prompt");
  free(long_prompt);
  expect_status(port, "POST", "/v1/completions", NULL, "{\"prompt\": \"a\"}", 401, NULL);
  expect_status(port, "POST", "/v1/completions", "wrong-key", "{\"prompt\": \"a\"}", 401, NULL);
  expect_status(port, "GET", "/v1/sessions", NULL, NULL, 401, NULL);
  expect_status(port, "GET", "/v1/nothing", API_KEY, NULL, 404, NULL);
  expect_status(port, "DELETE", "/v1/sessions/never-made", API_KEY, NULL, 404, NULL);
  expect_status(port, "POST", "/v1/sessions/..%2Fetc/reset", API_KEY, NULL, 400, NULL);
  expect_status(port, "GET", "/v1/completions", API_KEY, NULL, 405, NULL);
  expect_status(port, "DELETE", "/health", API_KEY, NULL, 405, NULL);
  /* Over the 1 MiB body cap. */
  size_t big = 1024 * 1024 + 100;
  char *huge = malloc(big + 1);
  memset(huge, ' ', big);
  huge[big] = '\0';
  expect_status(port, "POST", "/v1/completions", API_KEY, huge, 413, NULL);
  free(huge);
}
END_TEST

/* ---- sessions ------------------------------------------------------- */

static const char first_prompt[] = "Once upon a time";
static const char follow_up[] = " The cat was happy.";

/* What one process gets feeding both requests into one session: the first
 * prompt (with BOS), 8 greedy tokens, then the follow-up text, 8 more. */
static void reference_answers(char *first, char *second, size_t size) {
  clttt_device *device = test_open_device();
  clttt_model *model = NULL;
  clttt_tokenizer *tokenizer = NULL;
  ck_assert_int_eq(clttt_model_load(&model, device, stories(), NULL), CLTTT_SUCCESS);
  ck_assert_int_eq(clttt_tokenizer_load(&tokenizer, stories()), CLTTT_SUCCESS);
  clttt_session_params params = clttt_session_default_params();
  params.context = 512;
  params.logits = CLTTT_LOGITS_LAST;
  clttt_session *session = NULL;
  ck_assert_int_eq(clttt_session_create(&session, model, &params), CLTTT_SUCCESS);
  clttt_sampler *sampler = NULL;
  clttt_sampler_params sampling = clttt_sampler_default_params();
  ck_assert_int_eq(clttt_sampler_create(&sampler, &sampling, 512), CLTTT_SUCCESS);
  float logits[512];
  for (int part = 0; part < 2; part++) {
    char *out = part ? second : first;
    out[0] = '\0';
    int32_t *ids = NULL;
    int count = 0;
    char text[512];
    snprintf(text, sizeof text, "%s", part ? follow_up : first_prompt);
    ck_assert_int_eq(clttt_tokenizer_encode(tokenizer, text, part == 0, &ids, &count), CLTTT_SUCCESS);
    ck_assert_int_eq(clttt_session_feed(session, ids, count, logits, 1), CLTTT_SUCCESS);
    free(ids);
    clttt_tokenizer_stream *stream = NULL;
    ck_assert_int_eq(clttt_tokenizer_stream_create(&stream, tokenizer), CLTTT_SUCCESS);
    for (int produced = 0; produced < 8; produced++) {
      int32_t token;
      ck_assert_int_eq(clttt_sampler_sample(sampler, logits, NULL, 0, &token), CLTTT_SUCCESS);
      if (token == clttt_tokenizer_eos(tokenizer))
        break;
      const char *piece;
      ck_assert_int_eq(clttt_tokenizer_stream_put(stream, token, &piece), CLTTT_SUCCESS);
      strncat(out, piece, size - strlen(out) - 1);
      ck_assert_int_eq(clttt_session_feed(session, &token, 1, logits, 1), CLTTT_SUCCESS);
    }
    const char *tail;
    clttt_tokenizer_stream_flush(stream, &tail);
    strncat(out, tail, size - strlen(out) - 1);
    clttt_tokenizer_stream_free(stream);
  }
  clttt_sampler_free(sampler);
  clttt_session_free(session);
  clttt_tokenizer_free(tokenizer);
  clttt_model_free(model);
  clttt_device_close(device);
}

/* The second request of session NAME: the first prompt, the first answer
 * and the follow-up; checks that the session was continued, not refed. */
static char *second_request(int port, const char *name, const char *first_answer, int expect_reused) {
  char prompt[2048];
  snprintf(prompt, sizeof prompt, "%s%s%s", first_prompt, first_answer, follow_up);
  char extra[128];
  snprintf(extra, sizeof extra, "\"session\":\"%s\"", name);
  char *body = completion_body(prompt, 8, extra);
  json_t *root = NULL;
  char *text = complete(port, body, &root);
  json_t *session = json_object_get(root, "session");
  ck_assert_msg(session != NULL, "no session in the response");
  ck_assert_msg(json_is_false(json_object_get(session, "reset")), "the session was reset");
  ck_assert_int_eq(json_integer_value(json_object_get(session, "reused_tokens")), expect_reused);
  json_decref(root);
  free(body);
  return text;
}

START_TEST(test_session_continues) {
  char first[1024], second[1024];
  reference_answers(first, second, sizeof first);
  char extra[64];
  snprintf(extra, sizeof extra, "\"session\":\"story\"");
  char *body = completion_body(first_prompt, 8, extra);
  json_t *root = NULL;
  char *answer = complete(shared_server.port, body, &root);
  ck_assert_str_eq(answer, first);
  int position = (int)json_integer_value(json_object_get(json_object_get(root, "session"), "position"));
  json_decref(root);
  char *continued = second_request(shared_server.port, "story", answer, position);
  ck_assert_str_eq(continued, second);
  /* A prompt that does not extend the session resets it, and says so. */
  char *other = completion_body("A dog ran", 2, "\"session\":\"story\"");
  free(complete(shared_server.port, other, &root));
  ck_assert(json_is_true(json_object_get(json_object_get(root, "session"), "reset")));
  json_decref(root);
  http_response list = request(shared_server.port, "GET", "/v1/sessions", NULL);
  ck_assert_msg(strstr(list.body, "\"story\"") != NULL, "%s", list.body);
  free(list.body);
  http_response reset = request(shared_server.port, "POST", "/v1/sessions/story/reset", NULL);
  ck_assert_int_eq(reset.status, 200);
  http_response removed = request(shared_server.port, "DELETE", "/v1/sessions/story", NULL);
  ck_assert_int_eq(removed.status, 200);
  free(reset.body);
  free(removed.body);
  free(other);
  free(continued);
  free(answer);
  free(body);
}
END_TEST

/* ---- concurrency ---------------------------------------------------- */

static const char *const client_prompts[8] = {"Once upon a time", "The cat", "Lily and Tom", "One day",
                                              "The sun was", "A big dog", "Tim had a ball", "The bird sang"};

typedef struct {
  int index;
  char *text;
} client_job;

static void *client(void *argument) {
  client_job *job = argument;
  char *body = completion_body(client_prompts[job->index], 16, NULL);
  http_response response = request(shared_server.port, "POST", "/v1/completions", body);
  free(body);
  json_t *root = response.status == 200 ? json_loads(response.body, 0, NULL) : NULL;
  const char *text = json_string_value(
      json_object_get(json_array_get(json_object_get(root, "choices"), 0), "text"));
  job->text = text ? strdup(text) : NULL;
  json_decref(root);
  free(response.body);
  return NULL;
}

START_TEST(test_eight_concurrent_clients) {
  char *expected[8];
  for (int i = 0; i < 8; i++) {
    char *body = completion_body(client_prompts[i], 16, NULL);
    expected[i] = complete(shared_server.port, body, NULL);
    free(body);
  }
  pthread_t threads[8];
  client_job jobs[8];
  for (int i = 0; i < 8; i++) {
    jobs[i].index = i;
    jobs[i].text = NULL;
    ck_assert_int_eq(pthread_create(&threads[i], NULL, client, &jobs[i]), 0);
  }
  for (int i = 0; i < 8; i++)
    pthread_join(threads[i], NULL);
  for (int i = 0; i < 8; i++) {
    ck_assert_msg(jobs[i].text != NULL, "client %d got no answer", i);
    ck_assert_msg(strcmp(jobs[i].text, expected[i]) == 0, "client %d ('%s'): '%s', alone: '%s'", i,
                  client_prompts[i], jobs[i].text, expected[i]);
    free(jobs[i].text);
    free(expected[i]);
  }
}
END_TEST

/* ---- shutdown ------------------------------------------------------- */

START_TEST(test_sigterm_saves_sessions) {
  char first[1024], second[1024];
  reference_answers(first, second, sizeof first);
  char directory[700];
  snprintf(directory, sizeof directory, "%s/sessions", scratch);
  static const char *extra[] = {"--session-dir", NULL, NULL};
  extra[1] = directory;
  server_process server;
  ck_assert_msg(start_server(&server, "first.log", extra) > 0, "the server did not start");
  char *body = completion_body(first_prompt, 8, "\"session\":\"kept\"");
  char *answer = complete(server.port, body, NULL);
  ck_assert_str_eq(answer, first);
  ck_assert_int_eq(stop_server(&server, SIGTERM), 0);
  char path[800];
  snprintf(path, sizeof path, "%s/kept.clttt", directory);
  struct stat info;
  ck_assert_msg(stat(path, &info) == 0, "SIGTERM did not save %s", path);

  ck_assert_msg(start_server(&server, "second.log", extra) > 0, "the server did not restart");
  http_response list = request(server.port, "GET", "/v1/sessions", NULL);
  ck_assert_msg(strstr(list.body, "\"kept\"") != NULL, "%s", list.body);
  free(list.body);
  /* BOS, the prompt's 4 tokens... : everything the first server held. */
  clttt_session_file_info file;
  ck_assert_int_eq(clttt_session_read_info(path, &file), CLTTT_SUCCESS);
  char *continued = second_request(server.port, "kept", answer, file.position);
  ck_assert_str_eq(continued, second);
  ck_assert_int_eq(stop_server(&server, SIGTERM), 0);
  free(continued);
  free(answer);
  free(body);
}
END_TEST

static Suite *serve_suite(void) {
  Suite *suite = suite_create("serve");
  TCase *shared = tcase_create("shared");
  tcase_add_unchecked_fixture(shared, setup_shared, teardown_shared);
  tcase_set_timeout(shared, 120);
  tcase_add_test(shared, test_health_models_metrics);
  tcase_add_test(shared, test_completion_and_stream);
  tcase_add_test(shared, test_bad_requests);
  tcase_add_test(shared, test_session_continues);
  tcase_add_test(shared, test_disconnect_frees_the_slot);
  tcase_add_test(shared, test_eight_concurrent_clients);
  tcase_add_test(shared, test_sigterm_saves_sessions);
  suite_add_tcase(suite, shared);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(serve_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
