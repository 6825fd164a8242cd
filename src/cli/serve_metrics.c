/* Prometheus text for clttt serve: monotonic counters plus the gauges the
 * engine reports, so that rates (tokens/s) can be taken by the scraper
 * while the totals' ratio gives the speed since start. */
#include "serve_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int codes[METRICS_CODES] = {200, 400, 401, 404, 405, 413, 500, 503, 0, 0};
static const char *const endpoint_names[ENDPOINT_COUNT] = {"health",   "models",   "completions", "chat_completions",
                                                           "metrics",  "sessions", "other"};

void metrics_init(serve_metrics *metrics) {
  memset(metrics, 0, sizeof *metrics);
  pthread_mutex_init(&metrics->lock, NULL);
}

void metrics_destroy(serve_metrics *metrics) { pthread_mutex_destroy(&metrics->lock); }

void metrics_count_request(serve_metrics *metrics, serve_endpoint endpoint, int http_status) {
  int index = METRICS_CODES - 1; /* any other status */
  for (int i = 0; i < METRICS_CODES - 2; i++)
    if (codes[i] == http_status)
      index = i;
  pthread_mutex_lock(&metrics->lock);
  metrics->requests[endpoint][index]++;
  pthread_mutex_unlock(&metrics->lock);
}

void metrics_add(serve_metrics *metrics, unsigned long long *field, unsigned long long amount) {
  pthread_mutex_lock(&metrics->lock);
  *field += amount;
  pthread_mutex_unlock(&metrics->lock);
}

void metrics_add_generation(serve_metrics *metrics, int prompt_tokens, int completion_tokens, int prefill_tokens,
                            double prefill_seconds, int decode_tokens, double decode_seconds, int reused_tokens,
                            int session_reset) {
  pthread_mutex_lock(&metrics->lock);
  metrics->prompt_tokens += (unsigned long long)prompt_tokens;
  metrics->completion_tokens += (unsigned long long)completion_tokens;
  metrics->prefill_tokens += (unsigned long long)prefill_tokens;
  metrics->prefill_seconds += prefill_seconds;
  metrics->decode_tokens += (unsigned long long)decode_tokens;
  metrics->decode_seconds += decode_seconds;
  metrics->reused_tokens += (unsigned long long)reused_tokens;
  metrics->session_resets += (unsigned long long)(session_reset != 0);
  pthread_mutex_unlock(&metrics->lock);
}

typedef struct {
  char *data;
  size_t size, capacity;
} out_text;

static void put(out_text *out, const char *format, ...) __attribute__((format(printf, 2, 3)));

static void put(out_text *out, const char *format, ...) {
  if (!out->data)
    return;
  for (;;) {
    va_list list;
    va_start(list, format);
    int n = vsnprintf(out->data + out->size, out->capacity - out->size, format, list);
    va_end(list);
    if (n < 0)
      return;
    if (out->size + (size_t)n < out->capacity) {
      out->size += (size_t)n;
      return;
    }
    char *grown = realloc(out->data, out->capacity * 2 + (size_t)n);
    if (!grown) {
      free(out->data);
      out->data = NULL;
      return;
    }
    out->data = grown;
    out->capacity = out->capacity * 2 + (size_t)n;
  }
}

static void counter(out_text *out, const char *name, const char *help, double value) {
  put(out, "# HELP %s %s\n# TYPE %s counter\n%s %.17g\n", name, help, name, name, value);
}

static void gauge(out_text *out, const char *name, const char *help, double value) {
  put(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, value);
}

char *metrics_render(serve_metrics *metrics, const serve_gauges *gauges) {
  out_text out = {malloc(4096), 0, 4096};
  pthread_mutex_lock(&metrics->lock);
  serve_metrics m = *metrics;
  pthread_mutex_unlock(&metrics->lock);
  put(&out, "# HELP clttt_requests_total HTTP requests answered, by endpoint and status code.\n"
            "# TYPE clttt_requests_total counter\n");
  for (int e = 0; e < ENDPOINT_COUNT; e++)
    for (int c = 0; c < METRICS_CODES - 1; c++)
      if (m.requests[e][c] && codes[c])
        put(&out, "clttt_requests_total{endpoint=\"%s\",code=\"%d\"} %llu\n", endpoint_names[e], codes[c],
            m.requests[e][c]);
  for (int e = 0; e < ENDPOINT_COUNT; e++)
    if (m.requests[e][METRICS_CODES - 1])
      put(&out, "clttt_requests_total{endpoint=\"%s\",code=\"other\"} %llu\n", endpoint_names[e],
          m.requests[e][METRICS_CODES - 1]);
  counter(&out, "clttt_prompt_tokens_total", "Prompt tokens of completed requests.", (double)m.prompt_tokens);
  counter(&out, "clttt_completion_tokens_total", "Tokens generated.", (double)m.completion_tokens);
  counter(&out, "clttt_prefill_tokens_total", "Prompt tokens fed through the model (reused ones are not).",
          (double)m.prefill_tokens);
  counter(&out, "clttt_prefill_seconds_total", "Time spent feeding prompts.", m.prefill_seconds);
  counter(&out, "clttt_decode_tokens_total", "Tokens sampled one at a time.", (double)m.decode_tokens);
  counter(&out, "clttt_decode_seconds_total", "Time spent decoding.", m.decode_seconds);
  gauge(&out, "clttt_prefill_tokens_per_second", "Prefill speed since start (tokens fed / seconds feeding).",
        m.prefill_seconds > 0 ? (double)m.prefill_tokens / m.prefill_seconds : 0.0);
  gauge(&out, "clttt_decode_tokens_per_second", "Decode speed since start (tokens / seconds decoding).",
        m.decode_seconds > 0 ? (double)m.decode_tokens / m.decode_seconds : 0.0);
  counter(&out, "clttt_session_reused_tokens_total", "Prompt tokens a named session already held (not refed).",
          (double)m.reused_tokens);
  counter(&out, "clttt_session_resets_total",
          "Requests whose prompt diverged from their session's tokens: reset and refed (TTT cannot rewind).",
          (double)m.session_resets);
  counter(&out, "clttt_session_loads_total", "Sessions loaded from --session-dir.", (double)m.session_loads);
  counter(&out, "clttt_session_saves_total", "Sessions saved to --session-dir.", (double)m.session_saves);
  counter(&out, "clttt_session_evictions_total", "Named sessions moved out of a slot to make room.",
          (double)m.session_evictions);
  counter(&out, "clttt_client_disconnects_total", "Streams stopped because the client went away.",
          (double)m.disconnects);
  counter(&out, "clttt_queue_rejections_total", "Requests refused with 503 because the queue was full.",
          (double)m.rejected_full);
  gauge(&out, "clttt_live_sessions", "Named sessions held in slots.", gauges->live_sessions);
  gauge(&out, "clttt_slots", "Slots (sessions fed in parallel).", gauges->slots);
  gauge(&out, "clttt_slots_busy", "Slots running a request.", gauges->busy_slots);
  gauge(&out, "clttt_queue_depth", "Requests waiting for a slot.", gauges->queue_depth);
  gauge(&out, "clttt_queue_capacity", "Requests that may wait before 503.", gauges->queue_capacity);
  return out.data;
}
