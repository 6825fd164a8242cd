/* OpenAI's request and response JSON for clttt serve: parsing and
 * validating /v1/completions and /v1/chat/completions bodies, and building
 * the responses, stream chunks and error objects. */
#ifndef CLTTT_SERVE_OPENAI_H
#define CLTTT_SERVE_OPENAI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "clttt.h"
#include "serve_chat.h"

#define OPENAI_MAX_STOP 4
#define OPENAI_MAX_STOP_BYTES 256
#define SESSION_NAME_MAX 64

typedef struct {
  int chat;
  char *prompt;               /* text (the rendered conversation for chat); NULL with prompt_ids */
  int32_t *prompt_ids;        /* a completion prompt given as token ids */
  int prompt_id_count;
  int add_bos;                /* text prompts of /v1/completions start with BOS; chat templates say themselves */
  int max_tokens;             /* 0: until EOS or the context is full */
  clttt_sampler_params sampling;
  char *stop[OPENAI_MAX_STOP];
  int stop_count;
  int stream;
  char session[SESSION_NAME_MAX + 1]; /* "" : stateless */
} openai_request;

/* 1 when `name` matches [A-Za-z0-9_-]{1,64}: safe as a file name. */
int session_name_valid(const char *name);

/* Parses a body. Returns 0, or 400 with an OpenAI-style message in `error`
 * and the offending field in `param` ("" when none). */
int openai_parse_request(const char *body, size_t size, int chat, const chat_template *tmpl,
                         openai_request *request, char *error, size_t error_size, char *param,
                         size_t param_size);
void openai_request_free(openai_request *request);

/* {"error": {"message", "type", "param", "code"}} as text (malloc'ed). */
char *openai_error_body(int http_status, const char *message, const char *param);

/* What a finished generation reports. */
typedef struct {
  const char *id;             /* "cmpl-7" */
  long created;
  const char *model;
  const char *text;
  const char *finish_reason;  /* "stop", "length", or NULL while streaming */
  int prompt_tokens, completion_tokens;
  const char *session;        /* NULL or "" for stateless requests */
  int reused_tokens, session_reset, session_position;
} openai_result;

/* The whole response of a non-streamed request (malloc'ed). */
char *openai_response_body(int chat, const openai_result *result);
/* One server-sent event "data: {...}\n\n" (malloc'ed): a chunk with `text`,
 * the first chat chunk (role), or the last (finish_reason, usage). */
char *openai_stream_event(int chat, const openai_result *result, int first);

#endif
