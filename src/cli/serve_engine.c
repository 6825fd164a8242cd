/* Slots, queue and named sessions of clttt serve.
 *
 * One lock guards the queue and every slot's bookkeeping; the model runs
 * outside it. Each slot has one worker thread, so a clttt_session is only
 * ever fed by its own thread (clttt.h's rule), while the model and the
 * tokenizer are shared read-only.
 *
 * Scheduling keeps requests of one named session in arrival order: a job
 * for a session resident in a busy slot waits for that slot, and a job for
 * a session that is being saved out of a slot waits for the save. A
 * session not in any slot takes a free slot, else the least recently used
 * idle named one (evicting it to --session-dir).
 *
 * Prefix reuse. A session cannot be rewound: its fast weights have learned
 * from every token it was fed. So a request continues its session only
 * when the prompt extends what the session holds (as text, or as tokens);
 * any other prompt resets the session and feeds the prompt from scratch,
 * and the response says so ("session": {"reset": true}). */
#include "serve_engine.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* Prompt tokens fed per call, so that a cancelled request stops soon. */
#define FEED_PIECE 256

typedef struct slot {
  int index;
  engine *server;
  clttt_session *session;
  char name[SESSION_NAME_MAX + 1];     /* the named session it holds; "" none */
  char evicting[SESSION_NAME_MAX + 1]; /* a session its worker is saving out */
  int needs_load;                      /* `name` was just assigned: load or start it */
  int busy;
  unsigned long long last_used;
  job *current;
  char *text;                          /* what the session was fed, as text; NULL when unknown */
  pthread_t thread;
  int thread_started;
  pthread_cond_t wake;
} slot;

struct engine {
  clttt_model *model;
  const clttt_tokenizer *tokenizer;
  engine_params params;
  serve_metrics *metrics;
  pthread_mutex_t lock;
  slot *slots;
  job *head, *tail;
  int queued;
  int stopping;
  unsigned long long clock;
  int vocab_size, decodable, eos;
};

static double now_seconds(void) {
  struct timespec time;
  clock_gettime(CLOCK_MONOTONIC, &time);
  return (double)time.tv_sec + 1e-9 * (double)time.tv_nsec;
}

job *job_create(job_kind kind) {
  job *item = calloc(1, sizeof *item);
  if (!item)
    return NULL;
  item->kind = kind;
  item->refs = 1;
  item->http_status = 200;
  pthread_mutex_init(&item->lock, NULL);
  pthread_cond_init(&item->changed, NULL);
  return item;
}

void job_release(job *item) {
  if (!item)
    return;
  pthread_mutex_lock(&item->lock);
  int refs = --item->refs;
  pthread_mutex_unlock(&item->lock);
  if (refs)
    return;
  openai_request_free(&item->request);
  free(item->tokens);
  free(item->text);
  pthread_mutex_destroy(&item->lock);
  pthread_cond_destroy(&item->changed);
  free(item);
}

static int job_cancelled(job *item) {
  pthread_mutex_lock(&item->lock);
  int cancelled = item->cancelled;
  pthread_mutex_unlock(&item->lock);
  return cancelled;
}

/* Makes text visible to the waiting HTTP thread. */
static void job_emit(job *item, const char *text, size_t n) {
  if (!n)
    return;
  pthread_mutex_lock(&item->lock);
  if (item->text_size + n + 1 > item->text_capacity) {
    size_t capacity = item->text_capacity ? item->text_capacity * 2 : 256;
    while (capacity < item->text_size + n + 1)
      capacity *= 2;
    char *grown = realloc(item->text, capacity);
    if (!grown) {
      pthread_mutex_unlock(&item->lock);
      return;
    }
    item->text = grown;
    item->text_capacity = capacity;
  }
  memcpy(item->text + item->text_size, text, n);
  item->text_size += n;
  item->text[item->text_size] = '\0';
  pthread_cond_broadcast(&item->changed);
  pthread_mutex_unlock(&item->lock);
}

static void job_finish(job *item, int http_status, const char *error) {
  pthread_mutex_lock(&item->lock);
  item->http_status = http_status;
  if (error)
    snprintf(item->error, sizeof item->error, "%s", error);
  item->done = 1;
  pthread_cond_broadcast(&item->changed);
  pthread_mutex_unlock(&item->lock);
}

static void session_path(const engine *server, const char *name, char *path, size_t size) {
  snprintf(path, size, "%s/%s.clttt", server->params.session_dir, name);
}

static int session_file_exists(const engine *server, const char *name) {
  if (!server->params.session_dir)
    return 0;
  char path[4200];
  session_path(server, name, path, sizeof path);
  return access(path, F_OK) == 0;
}

static void set_text(slot *s, const char *text) {
  free(s->text);
  s->text = NULL;
  if (text) {
    size_t n = strlen(text) + 1;
    s->text = malloc(n);
    if (s->text)
      memcpy(s->text, text, n);
  }
}

/* ---- scheduling (under the lock) ----------------------------------- */

static slot *resident_slot(engine *server, const char *name) {
  for (int i = 0; i < server->params.slots; i++)
    if (strcmp(server->slots[i].name, name) == 0)
      return &server->slots[i];
  return NULL;
}

static int being_evicted(engine *server, const char *name) {
  for (int i = 0; i < server->params.slots; i++)
    if (strcmp(server->slots[i].evicting, name) == 0)
      return 1;
  return 0;
}

/* An idle slot for a session that is in none: a free one, else the least
 * recently used named one. */
static slot *idle_slot(engine *server) {
  slot *best = NULL;
  for (int i = 0; i < server->params.slots; i++) {
    slot *s = &server->slots[i];
    if (s->busy || s->evicting[0])
      continue;
    if (!s->name[0])
      return s;
    if (!best || s->last_used < best->last_used)
      best = s;
  }
  return best;
}

/* A reset or delete of a session in no slot needs no slot: only its file. */
static int file_operation(engine *server, job *item) {
  if (!session_file_exists(server, item->session))
    return 404;
  char path[4200];
  session_path(server, item->session, path, sizeof path);
  return unlink(path) == 0 ? 200 : 500;
}

static void schedule(engine *server) {
  job **link = &server->head;
  server->tail = NULL;
  while (*link) {
    job *item = *link;
    slot *target = NULL;
    int immediate = 0;
    if (item->session[0]) {
      slot *home = resident_slot(server, item->session);
      if (home)
        target = home->busy ? NULL : home;
      else if (being_evicted(server, item->session))
        target = NULL;
      else if (item->kind != JOB_GENERATE)
        immediate = 1;
      else
        target = idle_slot(server);
    } else {
      target = idle_slot(server);
    }
    if (!target && !immediate) {
      server->tail = item;
      link = &item->next;
      continue;
    }
    *link = item->next;
    item->next = NULL;
    server->queued--;
    if (immediate) {
      int status = file_operation(server, item);
      job_finish(item, status, status == 404 ? "no such session" : status == 500 ? "cannot remove the file" : NULL);
      job_release(item);
      continue;
    }
    if (strcmp(target->name, item->session) != 0) {
      if (target->name[0]) {
        snprintf(target->evicting, sizeof target->evicting, "%s", target->name);
        metrics_add(server->metrics, &server->metrics->session_evictions, 1);
      }
      snprintf(target->name, sizeof target->name, "%s", item->session);
      target->needs_load = item->session[0] != 0;
    }
    target->busy = 1;
    target->current = item;
    pthread_cond_signal(&target->wake);
  }
}

int engine_submit(engine *server, job *item) {
  pthread_mutex_lock(&server->lock);
  if (server->stopping) {
    pthread_mutex_unlock(&server->lock);
    return 503;
  }
  pthread_mutex_lock(&item->lock);
  item->refs++;
  pthread_mutex_unlock(&item->lock);
  item->next = NULL;
  if (server->tail)
    server->tail->next = item;
  else
    server->head = item;
  server->tail = item;
  server->queued++;
  schedule(server);
  /* Only a job that has to wait counts against the queue's capacity. */
  int rejected = 0;
  if (server->queued > server->params.queue_capacity && server->tail == item) {
    for (job **link = &server->head; *link; link = &(*link)->next)
      if (*link == item) {
        *link = NULL;
        server->queued--;
        rejected = 1;
        break;
      }
    schedule(server);
  }
  pthread_mutex_unlock(&server->lock);
  if (rejected) {
    metrics_add(server->metrics, &server->metrics->rejected_full, 1);
    job_release(item);
    return 503;
  }
  return 0;
}

void engine_cancel(engine *server, job *item) {
  pthread_mutex_lock(&server->lock);
  for (job **link = &server->head; *link; link = &(*link)->next)
    if (*link == item) {
      *link = item->next;
      server->queued--;
      schedule(server); /* recomputes the tail */
      job_finish(item, 503, "cancelled");
      job_release(item);
      break;
    }
  pthread_mutex_unlock(&server->lock);
  pthread_mutex_lock(&item->lock);
  item->cancelled = 1;
  pthread_mutex_unlock(&item->lock);
}

/* ---- the worker ----------------------------------------------------- */

static int save_session(slot *s, const char *name) {
  engine *server = s->server;
  if (!server->params.session_dir)
    return 1;
  char path[4200];
  session_path(server, name, path, sizeof path);
  int status = clttt_session_save(s->session, path);
  if (status != CLTTT_SUCCESS) {
    fprintf(stderr, "clttt serve: saving session '%s' failed (%s): %s\n", name, clttt_status_name(status),
            clttt_last_error());
    return 0;
  }
  metrics_add(server->metrics, &server->metrics->session_saves, 1);
  return 1;
}

/* Gives the slot the state of session `name`: its file, else a fresh start. */
static int load_session(slot *s, const char *name, char *error, size_t error_size) {
  engine *server = s->server;
  set_text(s, NULL);
  if (!session_file_exists(server, name)) {
    clttt_session_reset(s->session);
    set_text(s, "");
    return 1;
  }
  char path[4200];
  session_path(server, name, path, sizeof path);
  clttt_session *loaded = NULL;
  int status = clttt_session_load(&loaded, server->model, path, server->params.context);
  if (status != CLTTT_SUCCESS) {
    snprintf(error, error_size, "the file of session '%s' cannot be loaded (%s): %s", name,
             clttt_status_name(status), clttt_last_error());
    clttt_session_reset(s->session);
    return 0;
  }
  clttt_session_free(s->session);
  s->session = loaded;
  metrics_add(server->metrics, &server->metrics->session_loads, 1);
  /* The file holds tokens, not text: their decoding is the best guess of
   * the text a follow-up prompt will start with. */
  int count = 0;
  const int32_t *tokens = clttt_session_tokens(s->session, &count);
  char *text = NULL;
  if (count == 0)
    set_text(s, "");
  else if (clttt_tokenizer_decode(server->tokenizer, tokens, count, &text) == CLTTT_SUCCESS)
    set_text(s, text);
  free(text);
  return 1;
}

typedef struct {
  char *data;
  size_t size, capacity;
} growing_text;

static int grow_append(growing_text *text, const char *piece, size_t n) {
  if (text->size + n + 1 > text->capacity) {
    size_t capacity = text->capacity ? text->capacity * 2 : 256;
    while (capacity < text->size + n + 1)
      capacity *= 2;
    char *grown = realloc(text->data, capacity);
    if (!grown)
      return 0;
    text->data = grown;
    text->capacity = capacity;
  }
  memcpy(text->data + text->size, piece, n);
  text->size += n;
  text->data[text->size] = '\0';
  return 1;
}

/* Where the first stop string starts in text[from...], or -1. */
static long find_stop(const openai_request *request, const char *text, size_t from) {
  long best = -1;
  for (int i = 0; i < request->stop_count; i++) {
    const char *at = strstr(text + from, request->stop[i]);
    if (at && (best < 0 || at - text < best))
      best = at - text;
  }
  return best;
}

/* How many bytes at the end of text could begin a stop string: they wait
 * until the next token tells. */
static size_t stop_holdback(const openai_request *request, const char *text, size_t size) {
  size_t hold = 0;
  for (int i = 0; i < request->stop_count; i++) {
    size_t n = strlen(request->stop[i]);
    for (size_t k = n - 1; k > hold; k--)
      if (k <= size && memcmp(text + size - k, request->stop[i], k) == 0) {
        hold = k;
        break;
      }
  }
  return hold;
}

static void run_generate(slot *s, job *item) {
  engine *server = s->server;
  openai_request *request = &item->request;
  const int context = server->params.context;
  char error[512] = "";
  int32_t *rest = NULL;
  float *logits = NULL;
  clttt_sampler *sampler = NULL;
  clttt_tokenizer_stream *stream = NULL;
  growing_text generated = {0};
  int status = CLTTT_SUCCESS, http_status = 500;

  /* What to feed: the part of the prompt the session does not hold yet. */
  const int32_t *feed = item->tokens;
  int feed_count = item->token_count, reused = 0, reset = 0;
  int position = clttt_session_position(s->session);
  if (!item->session[0]) {
    clttt_session_reset(s->session);
  } else {
    int held = 0;
    const int32_t *tokens = clttt_session_tokens(s->session, &held);
    size_t text_held = s->text ? strlen(s->text) : 0;
    int extended = 0;
    if (request->prompt && s->text && held > 0 && strlen(request->prompt) > text_held &&
        memcmp(request->prompt, s->text, text_held) == 0) {
      int rest_count = 0;
      if (clttt_tokenizer_encode(server->tokenizer, request->prompt + text_held, 0, &rest, &rest_count) ==
              CLTTT_SUCCESS &&
          rest_count > 0 && held + rest_count < context) {
        feed = rest;
        feed_count = rest_count;
        extended = 1;
      }
    }
    if (!extended && held > 0 && item->token_count > held && item->token_count < context &&
        memcmp(item->tokens, tokens, (size_t)held * sizeof *tokens) == 0) {
      feed = item->tokens + held;
      feed_count = item->token_count - held;
      extended = 1;
    }
    if (extended) {
      reused = held;
    } else {
      reset = position > 0;
      clttt_session_reset(s->session);
    }
  }
  set_text(s, NULL); /* unknown until the generation is complete */

  const int prompt_tokens = reused + feed_count;
  logits = malloc((size_t)server->vocab_size * sizeof *logits);
  if (!logits) {
    snprintf(error, sizeof error, "out of host memory");
    goto done;
  }
  for (int i = 0; i < feed_count; i++)
    if (feed[i] >= server->vocab_size) {
      snprintf(error, sizeof error, "prompt token %d is %d; the model's vocabulary has %d entries", i, feed[i],
               server->vocab_size);
      http_status = 400;
      goto done;
    }
  double start = now_seconds();
  for (int done_count = 0; done_count < feed_count && status == CLTTT_SUCCESS;) {
    if (job_cancelled(item))
      goto cancelled;
    int piece = feed_count - done_count < FEED_PIECE ? feed_count - done_count : FEED_PIECE;
    status = clttt_session_feed(s->session, feed + done_count, piece, logits, 1);
    done_count += piece;
  }
  double prefill_seconds = now_seconds() - start;
  if (status != CLTTT_SUCCESS) {
    snprintf(error, sizeof error, "feeding the prompt failed (%s): %s", clttt_status_name(status),
             clttt_last_error());
    clttt_session_reset(s->session);
    goto done;
  }

  status = clttt_sampler_create(&sampler, &request->sampling, server->vocab_size);
  if (status == CLTTT_SUCCESS)
    status = clttt_tokenizer_stream_create(&stream, server->tokenizer);
  if (status != CLTTT_SUCCESS) {
    snprintf(error, sizeof error, "setting up sampling failed: %s", clttt_last_error());
    goto done;
  }
  const char *finish_reason = "length";
  size_t released = 0;
  int produced = 0, all_fed = 1, stopped_by_string = 0;
  start = now_seconds();
  for (;;) {
    if (request->max_tokens && produced >= request->max_tokens)
      break;
    if (clttt_session_position(s->session) >= context)
      break;
    if (job_cancelled(item))
      goto cancelled;
    for (int v = server->decodable; v < server->vocab_size; v++)
      logits[v] = -INFINITY;
    int recent_count = 0;
    const int32_t *recent = clttt_session_tokens(s->session, &recent_count);
    int32_t token = 0;
    status = clttt_sampler_sample(sampler, logits, recent, recent_count, &token);
    if (status != CLTTT_SUCCESS)
      break;
    if (token == server->eos) {
      finish_reason = "stop";
      break;
    }
    produced++;
    const char *piece = "";
    if ((status = clttt_tokenizer_stream_put(stream, token, &piece)) != CLTTT_SUCCESS)
      break;
    size_t scan_from = generated.size > OPENAI_MAX_STOP_BYTES ? generated.size - OPENAI_MAX_STOP_BYTES : 0;
    if (!grow_append(&generated, piece, strlen(piece))) {
      status = CLTTT_ERROR_OUT_OF_HOST_MEMORY;
      break;
    }
    /* Named sessions keep every token they produced, the last one too, so
     * that the next request's prompt (this answer appended) extends them. */
    int last = request->max_tokens && produced >= request->max_tokens;
    long stop_at = request->stop_count ? find_stop(request, generated.data, scan_from) : -1;
    if (stop_at >= 0 || !last || item->session[0]) {
      if (clttt_session_position(s->session) < context)
        status = clttt_session_feed(s->session, &token, 1, logits, 1);
      else
        all_fed = 0;
      if (status != CLTTT_SUCCESS)
        break;
    }
    if (stop_at >= 0) {
      job_emit(item, generated.data + released, (size_t)stop_at - released);
      released = (size_t)stop_at;
      finish_reason = "stop";
      stopped_by_string = 1;
      break;
    }
    size_t hold = stop_holdback(request, generated.data, generated.size);
    if (generated.size - hold > released) {
      job_emit(item, generated.data + released, generated.size - hold - released);
      released = generated.size - hold;
    }
  }
  double decode_seconds = now_seconds() - start;
  if (status != CLTTT_SUCCESS) {
    snprintf(error, sizeof error, "generating failed (%s): %s", clttt_status_name(status), clttt_last_error());
    clttt_session_reset(s->session);
    goto done;
  }
  if (!stopped_by_string) {
    const char *tail = "";
    if (clttt_tokenizer_stream_flush(stream, &tail) == CLTTT_SUCCESS)
      grow_append(&generated, tail, strlen(tail));
    job_emit(item, generated.data + released, generated.size - released);
    released = generated.size;
  }
  if (item->session[0] && request->prompt && all_fed) {
    growing_text whole = {0};
    if (grow_append(&whole, request->prompt, strlen(request->prompt)) &&
        grow_append(&whole, generated.data ? generated.data : "", generated.size))
      set_text(s, whole.data);
    free(whole.data);
  }
  metrics_add_generation(server->metrics, prompt_tokens, produced, feed_count, prefill_seconds, produced,
                         decode_seconds, reused, reset);
  pthread_mutex_lock(&item->lock);
  item->finish_reason = finish_reason;
  item->prompt_tokens = prompt_tokens;
  item->completion_tokens = produced;
  item->reused_tokens = reused;
  item->session_reset = reset;
  item->session_position = clttt_session_position(s->session);
  pthread_mutex_unlock(&item->lock);
  http_status = 200;
  goto done;
cancelled:
  /* The session keeps what it was fed (its tokens say what): a session
   * stopped by SIGTERM is saved as it stands. */
  metrics_add(server->metrics, &server->metrics->disconnects, 1);
  http_status = 503;
  snprintf(error, sizeof error, "cancelled");
done:
  job_finish(item, http_status, http_status == 200 ? NULL : error);
  free(generated.data);
  clttt_tokenizer_stream_free(stream);
  clttt_sampler_free(sampler);
  free(logits);
  free(rest);
}

static void run_job(slot *s, job *item, int load_ok, const char *load_error) {
  if (!load_ok) {
    pthread_mutex_lock(&s->server->lock);
    s->name[0] = '\0';
    pthread_mutex_unlock(&s->server->lock);
    job_finish(item, 500, load_error);
    return;
  }
  if (item->kind == JOB_GENERATE) {
    run_generate(s, item);
    return;
  }
  /* Reset and delete of a resident session: an empty session, and no file
   * that would bring the old state back. */
  clttt_session_reset(s->session);
  set_text(s, "");
  if (s->server->params.session_dir && session_file_exists(s->server, item->session)) {
    char path[4200];
    session_path(s->server, item->session, path, sizeof path);
    unlink(path);
  }
  if (item->kind == JOB_DELETE) {
    pthread_mutex_lock(&s->server->lock);
    s->name[0] = '\0';
    pthread_mutex_unlock(&s->server->lock);
  }
  job_finish(item, 200, NULL);
}

static void *worker(void *argument) {
  slot *s = argument;
  engine *server = s->server;
  pthread_mutex_lock(&server->lock);
  for (;;) {
    while (!s->current && !server->stopping)
      pthread_cond_wait(&s->wake, &server->lock);
    if (!s->current)
      break;
    job *item = s->current;
    char evict[SESSION_NAME_MAX + 1], name[SESSION_NAME_MAX + 1];
    snprintf(evict, sizeof evict, "%s", s->evicting);
    snprintf(name, sizeof name, "%s", s->name);
    int needs_load = s->needs_load;
    s->needs_load = 0;
    pthread_mutex_unlock(&server->lock);

    if (evict[0]) {
      if (!server->params.session_dir)
        fprintf(stderr, "clttt serve: session '%s' evicted without --session-dir: its state is gone\n", evict);
      save_session(s, evict);
      if (!needs_load)
        clttt_session_reset(s->session);
    }
    pthread_mutex_lock(&server->lock);
    s->evicting[0] = '\0';
    schedule(server); /* jobs for the evicted session may go now */
    pthread_mutex_unlock(&server->lock);

    char error[600] = "";
    int load_ok = needs_load ? load_session(s, name, error, sizeof error) : 1;
    run_job(s, item, load_ok, error);
    job_release(item);

    pthread_mutex_lock(&server->lock);
    s->current = NULL;
    s->busy = 0;
    s->last_used = ++server->clock;
    schedule(server);
  }
  pthread_mutex_unlock(&server->lock);
  /* Stopping: what a named session learned is kept for the next start. */
  if (s->name[0])
    save_session(s, s->name);
  return NULL;
}

/* ---- life cycle ------------------------------------------------------ */

int engine_create(engine **created, clttt_model *model, const clttt_tokenizer *tokenizer,
                  const engine_params *params, serve_metrics *metrics, char *error, size_t error_size) {
  *created = NULL;
  engine *server = calloc(1, sizeof *server);
  if (!server || !(server->slots = calloc((size_t)params->slots, sizeof *server->slots))) {
    free(server);
    snprintf(error, error_size, "out of host memory");
    return 0;
  }
  server->model = model;
  server->tokenizer = tokenizer;
  server->params = *params;
  server->metrics = metrics;
  const clttt_config *config = clttt_model_get_config(model);
  server->vocab_size = config->vocab_size;
  int tokenizer_size = clttt_tokenizer_vocab_size(tokenizer);
  server->decodable = tokenizer_size < config->vocab_size ? tokenizer_size : config->vocab_size;
  server->eos = clttt_tokenizer_eos(tokenizer);
  pthread_mutex_init(&server->lock, NULL);
  for (int i = 0; i < params->slots; i++) {
    slot *s = &server->slots[i];
    s->index = i;
    s->server = server;
    pthread_cond_init(&s->wake, NULL);
    int status = clttt_session_create(&s->session, model, &params->session_params);
    if (status != CLTTT_SUCCESS) {
      snprintf(error, error_size, "creating the session of slot %d failed (%s): %s", i, clttt_status_name(status),
               clttt_last_error());
      engine_shutdown(server);
      engine_free(server);
      return 0;
    }
  }
  for (int i = 0; i < params->slots; i++) {
    if (pthread_create(&server->slots[i].thread, NULL, worker, &server->slots[i]) != 0) {
      snprintf(error, error_size, "cannot start worker thread %d", i);
      engine_shutdown(server);
      engine_free(server);
      return 0;
    }
    server->slots[i].thread_started = 1;
  }
  *created = server;
  return 1;
}

void engine_gauges(engine *server, serve_gauges *gauges) {
  memset(gauges, 0, sizeof *gauges);
  pthread_mutex_lock(&server->lock);
  gauges->slots = server->params.slots;
  gauges->queue_depth = server->queued;
  gauges->queue_capacity = server->params.queue_capacity;
  for (int i = 0; i < server->params.slots; i++) {
    gauges->busy_slots += server->slots[i].busy;
    gauges->live_sessions += server->slots[i].name[0] != 0;
  }
  pthread_mutex_unlock(&server->lock);
}

char *engine_list_sessions(engine *server) {
  json_t *list = json_array();
  pthread_mutex_lock(&server->lock);
  for (int i = 0; i < server->params.slots; i++) {
    slot *s = &server->slots[i];
    if (!s->name[0])
      continue;
    /* A busy slot's session is being fed by its worker: its position is
     * only read when idle. */
    json_t *entry = json_pack("{s:s, s:s, s:b, s:i, s:b}", "id", s->name, "object", "session", "resident", 1,
                              "slot", i, "busy", s->busy);
    if (!s->busy)
      json_object_set_new(entry, "position", json_integer(clttt_session_position(s->session)));
    json_array_append_new(list, entry);
  }
  pthread_mutex_unlock(&server->lock);
  DIR *dir = server->params.session_dir ? opendir(server->params.session_dir) : NULL;
  for (struct dirent *entry; dir && (entry = readdir(dir));) {
    size_t n = strlen(entry->d_name);
    if (n <= 6 || strcmp(entry->d_name + n - 6, ".clttt") != 0 || n - 6 > SESSION_NAME_MAX)
      continue;
    char name[SESSION_NAME_MAX + 1];
    memcpy(name, entry->d_name, n - 6);
    name[n - 6] = '\0';
    if (!session_name_valid(name))
      continue;
    pthread_mutex_lock(&server->lock);
    int resident = resident_slot(server, name) != NULL;
    pthread_mutex_unlock(&server->lock);
    if (resident)
      continue;
    json_array_append_new(list, json_pack("{s:s, s:s, s:b}", "id", name, "object", "session", "resident", 0));
  }
  if (dir)
    closedir(dir);
  json_t *root = json_pack("{s:s, s:o}", "object", "list", "data", list);
  char *text = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  return text;
}

void engine_shutdown(engine *server) {
  pthread_mutex_lock(&server->lock);
  server->stopping = 1;
  while (server->head) {
    job *item = server->head;
    server->head = item->next;
    server->queued--;
    job_finish(item, 503, "the server is stopping");
    job_release(item);
  }
  server->tail = NULL;
  for (int i = 0; i < server->params.slots; i++) {
    slot *s = &server->slots[i];
    if (s->current) {
      pthread_mutex_lock(&s->current->lock);
      s->current->cancelled = 1;
      pthread_mutex_unlock(&s->current->lock);
    }
    pthread_cond_signal(&s->wake);
  }
  pthread_mutex_unlock(&server->lock);
  for (int i = 0; i < server->params.slots; i++)
    if (server->slots[i].thread_started) {
      pthread_join(server->slots[i].thread, NULL);
      server->slots[i].thread_started = 0;
    }
}

void engine_free(engine *server) {
  if (!server)
    return;
  for (int i = 0; i < server->params.slots; i++) {
    clttt_session_free(server->slots[i].session);
    free(server->slots[i].text);
    pthread_cond_destroy(&server->slots[i].wake);
  }
  pthread_mutex_destroy(&server->lock);
  free(server->slots);
  free(server);
}
