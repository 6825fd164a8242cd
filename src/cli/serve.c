/* clttt serve: an OpenAI-compatible HTTP server whose named sessions keep
 * their KV cache and fast weights between requests. This file reads the
 * options, loads the model once, and runs until SIGTERM or SIGINT, after
 * which every named session is saved to --session-dir. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "serve_chat.h"
#include "serve_engine.h"
#include "serve_http.h"
#include "serve_metrics.h"

static void help(void) {
  printf("usage: clttt serve -m DIR [--host H] [--port P] [--slots N] [--ctx N] [options]\n"
         "Serves the model over HTTP with OpenAI's API: GET /health, GET /v1/models,\n"
         "POST /v1/completions, POST /v1/chat/completions (the model's ChatML or LLaMA-3\n"
         "chat template), GET /metrics (Prometheus), and sessions that keep learning:\n"
         "a request with \"session\": \"NAME\" continues that session's KV cache and fast\n"
         "weights when its prompt extends what the session holds, and resets it\n"
         "otherwise (TTT cannot be rewound). GET /v1/sessions lists them,\n"
         "POST /v1/sessions/NAME/reset empties one, DELETE /v1/sessions/NAME drops it.\n"
         "Runs until SIGTERM or SIGINT; then saves the named sessions (--session-dir).\n\n"
         "  --host H           address to listen on (default 127.0.0.1: this machine only)\n"
         "  --port P           TCP port (default 8080; 0: any free port, printed at start)\n"
         "  --slots N          sessions fed in parallel, one worker thread each (default 1)\n"
         "  --queue N          requests that may wait for a slot before 503 (default 16)\n"
         "  --ctx N            context of each slot's session (default: max_position_embeddings,\n"
         "                     at most 4096)\n"
         "  --session-dir DIR  keep named sessions in DIR/NAME.clttt when evicted from a slot\n"
         "                     and at shutdown, and load them from there (created if missing)\n"
         "  --api-key KEY      require 'Authorization: Bearer KEY' (all but /health);\n"
         "                     default: $CLTTT_API_KEY, else no key\n"
         "%s",
         model_options_help);
}

static int stop_pipe[2] = {-1, -1};

static void on_stop_signal(int number) {
  unsigned char byte = (unsigned char)number;
  int saved = errno;
  if (write(stop_pipe[1], &byte, 1) < 0) {
    /* Nothing to do: a signal already waiting stops the server anyway. */
  }
  errno = saved;
}

int command_serve(int argc, char **argv) {
  model_options options;
  model_options_init(&options);
  const char *host = "127.0.0.1", *session_dir = NULL, *api_key = getenv("CLTTT_API_KEY");
  int port = 8080, slots = 1, queue = 16, error = 0;
  for (int i = 1; i < argc && !error; i++) {
    const char *value = NULL;
    int missing = 0;
    if (cli_is_help(argv[i])) {
      help();
      return 0;
    } else if (strcmp(argv[i], "--session-in") == 0 || strcmp(argv[i], "--session-out") == 0) {
      fprintf(stderr, "clttt serve: %s does not apply: named sessions live in --session-dir\n", argv[i]);
      error = 1;
    } else if (model_options_parse(argc, argv, &i, &options, &error)) {
    } else if (cli_option_value(argc, argv, &i, "--host", &value, &missing)) {
      host = value;
    } else if (cli_option_value(argc, argv, &i, "--port", &value, &missing)) {
      error = !missing && (!parse_int(value, "--port", 0, &port) || port > 65535);
      if (error && port > 65535)
        fprintf(stderr, "clttt serve: --port expects 0 to 65535, got '%s'\n", value);
    } else if (cli_option_value(argc, argv, &i, "--slots", &value, &missing)) {
      error = !missing && !parse_int(value, "--slots", 1, &slots);
      if (!error && slots > 256) {
        fprintf(stderr, "clttt serve: --slots %d: at most 256\n", slots);
        error = 1;
      }
    } else if (cli_option_value(argc, argv, &i, "--queue", &value, &missing)) {
      error = !missing && !parse_int(value, "--queue", 0, &queue);
      if (!error && queue > 4096) {
        fprintf(stderr, "clttt serve: --queue %d: at most 4096\n", queue);
        error = 1;
      }
    } else if (cli_option_value(argc, argv, &i, "--session-dir", &value, &missing)) {
      session_dir = value;
    } else if (cli_option_value(argc, argv, &i, "--api-key", &value, &missing)) {
      api_key = value;
    } else {
      fprintf(stderr, "clttt serve: unknown option '%s' (see --help)\n", argv[i]);
      error = 1;
    }
    error |= missing;
  }
  if (error)
    return 2;
  if (!options.model_dir) {
    fprintf(stderr, "clttt serve: no model given: use -m DIR (see --help)\n");
    return 2;
  }
  if (options.ttt == 2) {
    fprintf(stderr, "clttt serve: --ttt expects on or off\n");
    return 2;
  }
  if (api_key && !api_key[0])
    api_key = NULL;
  if (session_dir && mkdir(session_dir, 0700) != 0 && errno != EEXIST) {
    fprintf(stderr, "clttt serve: cannot create --session-dir %s: %s\n", session_dir, strerror(errno));
    return 1;
  }

  /* SIGTERM and SIGINT only wake the main thread through a pipe: the
   * handler may run on any thread and does nothing else. A client that
   * closes its socket must not kill the server either. */
  if (pipe(stop_pipe) != 0) {
    fprintf(stderr, "clttt serve: pipe: %s\n", strerror(errno));
    return 1;
  }
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, NULL);
  sigaction(SIGINT, &action, NULL);
  signal(SIGPIPE, SIG_IGN);

  int exit_code = 1;
  clttt_tokenizer *tokenizer = NULL;
  clttt_device *device = NULL;
  clttt_model *model = NULL;
  engine *server_engine = NULL;
  chat_template chat;
  memset(&chat, 0, sizeof chat);
  serve_metrics metrics;
  metrics_init(&metrics);
  http_server http;
  memset(&http, 0, sizeof http);
  char message[1024];

  int status = clttt_tokenizer_load(&tokenizer, options.model_dir);
  if (status != CLTTT_SUCCESS) {
    cli_report("loading the tokenizer", status);
    goto done;
  }
  if (!chat_template_load(&chat, options.model_dir, message, sizeof message)) {
    fprintf(stderr, "clttt serve: %s\n", message);
    goto done;
  }
  if (chat.kind == CHAT_TEMPLATE_UNKNOWN)
    fprintf(stderr, "clttt serve: warning: the chat template is not one clttt renders (ChatML or LLaMA-3): '%s'; "
                    "/v1/chat/completions will refuse requests\n", chat.description);
  status = clttt_device_open(&device, options.device);
  if (status != CLTTT_SUCCESS) {
    cli_report("opening the OpenCL device", status);
    goto done;
  }
  clttt_model_params model_params = clttt_model_default_params();
  model_params.check_weights = options.check_weights;
  status = clttt_model_load(&model, device, options.model_dir, &model_params);
  if (status != CLTTT_SUCCESS) {
    cli_report("loading the model", status);
    goto done;
  }
  const clttt_config *config = clttt_model_get_config(model);
  int context = options.context;
  if (!context)
    context = config->max_position_embeddings < 4096 ? config->max_position_embeddings : 4096;
  if (context < 2) {
    fprintf(stderr, "clttt serve: --ctx %d leaves no room to generate\n", context);
    goto done;
  }
  options.logits_last_only = 1;
  engine_params params;
  memset(&params, 0, sizeof params);
  params.slots = slots;
  params.context = context;
  params.queue_capacity = queue;
  params.session_dir = session_dir;
  params.session_params = model_session_params(&options, context);
  if (!engine_create(&server_engine, model, tokenizer, &params, &metrics, message, sizeof message)) {
    fprintf(stderr, "clttt serve: %s\n", message);
    goto done;
  }

  /* The model's name for /v1/models and responses: its directory's. */
  const char *model_id = options.model_dir + strlen(options.model_dir);
  while (model_id > options.model_dir && model_id[-1] == '/')
    model_id--;
  const char *id_end = model_id;
  while (model_id > options.model_dir && model_id[-1] != '/')
    model_id--;
  char id[256];
  snprintf(id, sizeof id, "%.*s", (int)(id_end - model_id), model_id);
  http.engine = server_engine;
  http.metrics = &metrics;
  http.tokenizer = tokenizer;
  http.chat = &chat;
  http.model_id = id;
  http.api_key = api_key;
  http.context = context;
  http.vocab_size = config->vocab_size;
  http.max_body = SERVE_MAX_BODY;
  /* Enough connections for every slot and queue place, plus some for
   * health checks and metrics; more wait in the kernel's backlog. */
  if (!http_start(&http, host, port, (unsigned)(slots + queue + 16), message, sizeof message)) {
    fprintf(stderr, "clttt serve: %s\n", message);
    goto done;
  }
  fprintf(stderr, "clttt serve: listening on http://%s%s%s:%d (model %s, %d slot%s of %d tokens, TTT %s, chat "
                  "template %s%s%s)\n",
          strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", http_port(&http), id, slots,
          slots == 1 ? "" : "s", context, config->ttt_mode && params.session_params.ttt ? "on" : "off",
          chat_template_name(&chat), session_dir ? ", sessions in " : "", session_dir ? session_dir : "");
  unsigned char signal_number = 0;
  while (read(stop_pipe[0], &signal_number, 1) < 0 && errno == EINTR)
    ;
  fprintf(stderr, "clttt serve: %s: stopping%s\n", signal_number == SIGTERM ? "SIGTERM" : "SIGINT",
          session_dir ? " and saving the named sessions" : "");
  http_quiesce(&http);
  engine_shutdown(server_engine);
  http_stop(&http);
  fprintf(stderr, "clttt serve: stopped (%llu session saves in all)\n", metrics.session_saves);
  exit_code = 0;
done:
  http_stop(&http);
  if (server_engine) {
    engine_shutdown(server_engine);
    engine_free(server_engine);
  }
  clttt_model_free(model);
  clttt_device_close(device);
  chat_template_free(&chat);
  clttt_tokenizer_free(tokenizer);
  metrics_destroy(&metrics);
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  close(stop_pipe[0]);
  close(stop_pipe[1]);
  return exit_code;
}
