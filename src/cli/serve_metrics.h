/* Counters of clttt serve, rendered as Prometheus text by GET /metrics. */
#ifndef CLTTT_SERVE_METRICS_H
#define CLTTT_SERVE_METRICS_H

#include <pthread.h>
#include <stddef.h>

typedef enum {
  ENDPOINT_HEALTH,
  ENDPOINT_MODELS,
  ENDPOINT_COMPLETIONS,
  ENDPOINT_CHAT,
  ENDPOINT_METRICS,
  ENDPOINT_SESSIONS,
  ENDPOINT_OTHER,
  ENDPOINT_COUNT
} serve_endpoint;

#define METRICS_CODES 10

typedef struct {
  pthread_mutex_t lock;
  unsigned long long requests[ENDPOINT_COUNT][METRICS_CODES];
  unsigned long long prompt_tokens, completion_tokens;
  unsigned long long prefill_tokens, decode_tokens; /* fed through the model */
  double prefill_seconds, decode_seconds;
  unsigned long long reused_tokens;     /* prompt tokens a session already held */
  unsigned long long session_resets;    /* prompts that diverged from their session */
  unsigned long long session_loads, session_saves, session_evictions;
  unsigned long long disconnects;       /* streams whose client left early */
  unsigned long long rejected_full;     /* 503s: the queue was full */
} serve_metrics;

/* What the engine knows at the moment /metrics is asked. */
typedef struct {
  int slots, busy_slots, queue_depth, queue_capacity;
  int live_sessions;                    /* named sessions held in slots */
} serve_gauges;

void metrics_init(serve_metrics *metrics);
void metrics_destroy(serve_metrics *metrics);
void metrics_count_request(serve_metrics *metrics, serve_endpoint endpoint, int http_status);
/* Adds `amount` to the counter at `field` (one of the fields above) under the lock. */
void metrics_add(serve_metrics *metrics, unsigned long long *field, unsigned long long amount);
void metrics_add_generation(serve_metrics *metrics, int prompt_tokens, int completion_tokens, int prefill_tokens,
                            double prefill_seconds, int decode_tokens, double decode_seconds, int reused_tokens,
                            int session_reset);
/* The Prometheus exposition text (malloc'ed). */
char *metrics_render(serve_metrics *metrics, const serve_gauges *gauges);

#endif
