/* Load client for clttt serve: C concurrent clients, each sending R
 * non-streamed /v1/completions requests back to back over loopback; prints
 * requests/s, generated tokens/s and latency percentiles.
 *   bench/bench_serve PORT CLIENTS REQUESTS_PER_CLIENT MAX_TOKENS [API_KEY] */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"

static int port, requests_per_client, max_tokens;
static const char *api_key;

typedef struct {
  int index;
  double *latencies;
  long tokens;
  int failures;
} client_state;

/* One request; returns the completion tokens from "usage", -1 on failure. */
static long one_request(int client, int number) {
  static const char *const prompts[] = {"Once upon a time", "The cat", "Lily and Tom", "One day"};
  char body[256], head[512], response[65536];
  int body_size = snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0.8,\"seed\":%d}",
                           prompts[(client + number) % 4], max_tokens, client * 1000 + number);
  int head_size = snprintf(head, sizeof head,
                           "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s%s%s"
                           "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n",
                           api_key ? "Authorization: Bearer " : "", api_key ? api_key : "", api_key ? "\r\n" : "",
                           body_size);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {0};
  address.sin_family = AF_INET;
  address.sin_port = htons((uint16_t)port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  if (send(fd, head, (size_t)head_size, MSG_NOSIGNAL) != head_size ||
      send(fd, body, (size_t)body_size, MSG_NOSIGNAL) != body_size) {
    close(fd);
    return -1;
  }
  size_t size = 0;
  for (ssize_t n; size < sizeof response - 1 && (n = recv(fd, response + size, sizeof response - 1 - size, 0)) > 0;)
    size += (size_t)n;
  close(fd);
  response[size] = '\0';
  const char *tokens = strstr(response, "\"completion_tokens\":");
  if (strncmp(response, "HTTP/1.1 200", 12) != 0 || !tokens)
    return -1;
  return atol(tokens + strlen("\"completion_tokens\":"));
}

static void *run_client(void *argument) {
  client_state *state = argument;
  for (int i = 0; i < requests_per_client; i++) {
    double start = now_seconds();
    long tokens = one_request(state->index, i);
    state->latencies[i] = now_seconds() - start;
    if (tokens < 0)
      state->failures++;
    else
      state->tokens += tokens;
  }
  return NULL;
}

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: bench_serve PORT CLIENTS REQUESTS_PER_CLIENT MAX_TOKENS [API_KEY]\n");
    return 2;
  }
  port = atoi(argv[1]);
  int clients = atoi(argv[2]);
  requests_per_client = atoi(argv[3]);
  max_tokens = atoi(argv[4]);
  api_key = argc > 5 ? argv[5] : NULL;
  if (port <= 0 || clients <= 0 || requests_per_client <= 0 || max_tokens <= 0) {
    fprintf(stderr, "bench_serve: every number must be positive\n");
    return 2;
  }
  client_state *states = calloc((size_t)clients, sizeof *states);
  pthread_t *threads = calloc((size_t)clients, sizeof *threads);
  double *all = calloc((size_t)clients * (size_t)requests_per_client, sizeof *all);
  for (int c = 0; c < clients; c++) {
    states[c].index = c;
    states[c].latencies = all + (size_t)c * (size_t)requests_per_client;
  }
  double start = now_seconds();
  for (int c = 0; c < clients; c++)
    pthread_create(&threads[c], NULL, run_client, &states[c]);
  long tokens = 0;
  int failures = 0;
  for (int c = 0; c < clients; c++) {
    pthread_join(threads[c], NULL);
    tokens += states[c].tokens;
    failures += states[c].failures;
  }
  double elapsed = now_seconds() - start;
  int total = clients * requests_per_client;
  qsort(all, (size_t)total, sizeof *all, compare);
#define PERCENTILE(p) (all[(int)((p) / 100.0 * (total - 1) + 0.5)] * 1000.0)
  printf("clients %d, requests %d (%d failed), max_tokens %d: %.2f requests/s, %.1f tokens/s; "
         "latency ms p50 %.1f p90 %.1f p99 %.1f max %.1f\n",
         clients, total, failures, max_tokens, total / elapsed, tokens / elapsed, PERCENTILE(50), PERCENTILE(90),
         PERCENTILE(99), all[total - 1] * 1000.0);
  free(all);
  free(threads);
  free(states);
  return failures ? 1 : 0;
}
