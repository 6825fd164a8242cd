/* The HTTP layer of clttt serve (libmicrohttpd, a thread per connection):
 * routing, the API key, body limits, OpenAI error JSON and server-sent
 * events. */
#ifndef CLTTT_SERVE_HTTP_H
#define CLTTT_SERVE_HTTP_H

#include <stddef.h>

#include "clttt.h"
#include "serve_chat.h"
#include "serve_engine.h"
#include "serve_metrics.h"

/* Request bodies above this are refused with 413 (and not kept). */
#define SERVE_MAX_BODY (1024 * 1024)

typedef struct http_server {
  engine *engine;
  serve_metrics *metrics;
  const clttt_tokenizer *tokenizer;
  const chat_template *chat;
  const char *model_id;
  const char *api_key;       /* NULL: no key needed */
  int context;
  int vocab_size;
  size_t max_body;
  struct MHD_Daemon *daemon;
  unsigned long long next_id;
} http_server;

/* Listens on host:port (port 0: any free port; see http_port). */
int http_start(http_server *server, const char *host, int port, unsigned connection_limit, char *error,
               size_t error_size);
int http_port(const http_server *server);
/* Stops accepting connections; the open ones keep being served. */
void http_quiesce(http_server *server);
/* Closes every connection, waiting for their threads. */
void http_stop(http_server *server);

#endif
