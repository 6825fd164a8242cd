/* The engine of clttt serve: N slots, each a clttt_session fed by its own
 * worker thread, a bounded queue of jobs in front of them, and the named
 * sessions that live in slots or, evicted, in --session-dir files. */
#ifndef CLTTT_SERVE_ENGINE_H
#define CLTTT_SERVE_ENGINE_H

#include <pthread.h>
#include <stddef.h>

#include "clttt.h"
#include "serve_metrics.h"
#include "serve_openai.h"

typedef enum { JOB_GENERATE, JOB_RESET, JOB_DELETE } job_kind;

/* One request's work, shared by the HTTP thread that waits for it and the
 * worker that runs it; freed by whichever lets go last. */
typedef struct job {
  job_kind kind;
  openai_request request;    /* JOB_GENERATE */
  char session[SESSION_NAME_MAX + 1];
  int32_t *tokens;           /* the whole prompt, tokenized */
  int token_count;

  pthread_mutex_t lock;
  pthread_cond_t changed;
  char *text;                /* generated text released so far (stop strings held back) */
  size_t text_size, text_capacity;
  int done;
  int http_status;           /* 200, or the error's */
  char error[512];
  const char *finish_reason;
  int prompt_tokens, completion_tokens, reused_tokens, session_reset, session_position;
  int cancelled;             /* the client went away, or the server is stopping */
  int refs;
  struct job *next;
} job;

typedef struct {
  int slots, context, queue_capacity;
  const char *session_dir;   /* NULL: named sessions live only in slots */
  clttt_session_params session_params;
} engine_params;

typedef struct engine engine;

int engine_create(engine **created, clttt_model *model, const clttt_tokenizer *tokenizer,
                  const engine_params *params, serve_metrics *metrics, char *error, size_t error_size);
/* A new job with one reference for the caller. */
job *job_create(job_kind kind);
void job_release(job *item);
/* Queues a job (taking a reference). 0, or 503 when the queue is full or the
 * server is stopping. */
int engine_submit(engine *server, job *item);
/* Marks a job cancelled; a queued one is dropped from the queue. */
void engine_cancel(engine *server, job *item);
void engine_gauges(engine *server, serve_gauges *gauges);
/* The named sessions as a JSON list (malloc'ed text). */
char *engine_list_sessions(engine *server);
/* Stops taking jobs, cancels what waits and runs, saves every named session
 * to --session-dir and joins the workers. */
void engine_shutdown(engine *server);
void engine_free(engine *server);

#endif
