/* 'mpirun -np K clttt logits|generate|ppl ...': a pipeline over K MPI
 * ranks. Rank r loads a slice of the layers (clttt_model_params
 * first_layer / layer_count) on its own device and runs it; rank 0 also
 * owns the tokenizer, the sampling and the output: it runs the command
 * itself, and every feed goes through all ranks in order, activations
 * passed by MPI point-to-point, the logits sent back from the last rank.
 * Built with ./configure --with-mpi; without it, one process as always. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-config.h"
#include "cli.h"

#ifdef CLTTT_HAVE_MPI
#include <mpi.h>

enum { COMMAND_FEED = 1, COMMAND_QUIT = 2 };
enum { TAG_STATUS = 1, TAG_ROWS = 2, TAG_LOGITS = 3 };

/* What every rank needs to open its slice, sent by rank 0 in one piece. */
typedef struct {
  char model_dir[4096];
  char devices[4096]; /* --devices, one selector per rank; or empty */
  char device[256];   /* --device for every rank; or empty */
  int first_layer[SPLIT_MAX_DEVICES], layer_count[SPLIT_MAX_DEVICES];
  int check_weights;
  clttt_weight_type weights;
  clttt_session_params params;
} pipeline_setup;

/* One feed, broadcast by rank 0. */
typedef struct {
  int command, n, want_logits, last_only;
} pipeline_command;

static int rank = 0, size = 1, started = 0;
/* Rank 0: whether the setup went out, and whether the pipeline runs (the
 * other ranks then wait for feeds until told to quit). */
static int setup_sent = 0, running = 0;

int pipeline_start(int *argc, char ***argv) {
  /* Only under mpirun: a plain run must not pay for (or depend on) MPI. */
  if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK"))
    return 1;
  if (MPI_Init(argc, argv) != MPI_SUCCESS) {
    fprintf(stderr, "clttt: MPI_Init failed\n");
    return 0;
  }
  started = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return 1;
}

void pipeline_stop(void) {
  if (started && rank == 0 && size > 1) {
    /* A command that failed before opening the pipeline, or returned
     * without closing it, still lets the other ranks go. */
    if (!setup_sent) {
      pipeline_setup *refused = calloc(1, sizeof *refused);
      if (refused)
        MPI_Bcast(refused, (int)sizeof *refused, MPI_BYTE, 0, MPI_COMM_WORLD);
      else
        MPI_Abort(MPI_COMM_WORLD, 1);
      free(refused);
    }
    if (running) {
      pipeline_command command = {COMMAND_QUIT, 0, 0, 0};
      MPI_Bcast(&command, 4, MPI_INT, 0, MPI_COMM_WORLD);
    }
  }
  if (started)
    MPI_Finalize();
  started = 0;
}

void pipeline_refuse(void) {
  /* Every rank refused on its own: nobody waits for a setup. */
  setup_sent = 1;
  pipeline_stop();
}

int pipeline_rank(void) { return rank; }
int pipeline_size(void) { return size; }

/* The selector of rank `index` in "SEL,SEL,...", into out. */
static int nth_selector(const char *list, int index, char *out, size_t capacity) {
  const char *start = list;
  for (int i = 0; i < index && start; i++) {
    start = strchr(start, ',');
    start = start ? start + 1 : NULL;
  }
  if (!start)
    return 0;
  const char *comma = strchr(start, ',');
  size_t length = comma ? (size_t)(comma - start) : strlen(start);
  if (length == 0 || length >= capacity)
    return 0;
  memcpy(out, start, length);
  out[length] = '\0';
  return 1;
}

/* Opens this rank's device, slice and session; every rank learns whether
 * all did. */
static int open_slice(const pipeline_setup *setup, loaded_model *loaded) {
  char selector[256] = "";
  int ok = 1;
  if (setup->devices[0])
    ok = nth_selector(setup->devices, rank, selector, sizeof selector);
  else
    snprintf(selector, sizeof selector, "%s", setup->device);
  int status = ok ? clttt_device_open(&loaded->device, selector[0] ? selector : NULL) : CLTTT_ERROR_NO_DEVICE;
  clttt_model_params params = clttt_model_default_params();
  params.check_weights = setup->check_weights;
  params.weights = setup->weights;
  params.first_layer = setup->first_layer[rank];
  params.layer_count = setup->layer_count[rank];
  if (status == CLTTT_SUCCESS)
    status = clttt_model_load(&loaded->model, loaded->device, setup->model_dir, &params);
  if (status == CLTTT_SUCCESS)
    status = clttt_session_create(&loaded->session, loaded->model, &setup->params);
  if (status != CLTTT_SUCCESS) {
    char what[96];
    snprintf(what, sizeof what, "rank %d: opening layers %d..%d", rank, params.first_layer,
             params.first_layer + params.layer_count - 1);
    cli_report(what, status);
  }
  int mine = status == CLTTT_SUCCESS, all = 0;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!all && rank == 0)
    fprintf(stderr, "clttt: the pipeline of %d ranks could not start (see the ranks' messages)\n", size);
  loaded->pipeline = all;
  return all;
}

int pipeline_open(const model_options *options, int needed_context, loaded_model *loaded) {
  if (options->session_in || options->session_out) {
    fprintf(stderr, "clttt: --session-in/--session-out are not available under mpirun\n");
    return 0;
  }
  clttt_config config;
  int status = clttt_config_load(&config, options->model_dir);
  if (status != CLTTT_SUCCESS) {
    cli_report("reading the model's config.json", status);
    return 0;
  }
  const int layers = config.num_hidden_layers;
  clttt_config_free(&config);
  pipeline_setup *setup = calloc(1, sizeof *setup);
  if (!setup)
    return 0;
  int split[SPLIT_MAX_DEVICES], automatic = 1, ok = size <= SPLIT_MAX_DEVICES && size <= layers;
  if (!ok)
    fprintf(stderr, "clttt: %d ranks for %d layers: every rank needs at least one layer (at most %d ranks)\n",
            size, layers, SPLIT_MAX_DEVICES);
  if (ok)
    ok = split_parse(options->split, size, split, &automatic);
  int first = 0;
  for (int r = 0; ok && r < size; r++) {
    /* Automatic: equal shares of the layers, the first ranks one more. */
    setup->layer_count[r] = automatic ? layers / size + (r < layers % size) : split[r];
    setup->first_layer[r] = first;
    first += setup->layer_count[r];
  }
  if (ok && first != layers) {
    fprintf(stderr, "clttt: --split gives %d layers to the %d ranks, the model has %d: it must cover every layer\n",
            first, size, layers);
    ok = 0;
  }
  snprintf(setup->model_dir, sizeof setup->model_dir, "%s", options->model_dir);
  snprintf(setup->devices, sizeof setup->devices, "%s", options->devices ? options->devices : "");
  snprintf(setup->device, sizeof setup->device, "%s", options->device ? options->device : "");
  setup->check_weights = options->check_weights;
  setup->weights = options->weights;
  const int context = options->context ? options->context : needed_context;
  setup->params = model_session_params(options, context);
  /* A failed setup still goes out (marked by layer_count[0] = 0) so that
   * the other ranks stop too. */
  if (!ok)
    setup->layer_count[0] = 0;
  MPI_Bcast(setup, (int)sizeof *setup, MPI_BYTE, 0, MPI_COMM_WORLD);
  setup_sent = 1;
  ok = ok && open_slice(setup, loaded);
  running = ok;
  free(setup);
  return ok;
}

/* Rank r's part of one feed: activations from r - 1 (r > 0), to r + 1 or,
 * from the last rank, the logits to rank 0. A failure travels on as a
 * status so that no rank waits forever. */
static int feed_stage(loaded_model *loaded, const pipeline_command *command, const int32_t *tokens, float *logits) {
  const clttt_config *config = clttt_model_get_config(loaded->model);
  clttt_split_part part;
  clttt_model_get_part(loaded->model, 0, &part);
  const int end = part.first_layer + part.layer_count, last = rank == size - 1;
  const size_t n = (size_t)command->n;
  const int in_width = rank ? clttt_session_activation_width(loaded->session, part.first_layer) : 0;
  const int out_width = last ? 0 : clttt_session_activation_width(loaded->session, end);
  const int logit_rows = command->want_logits ? (command->last_only ? 1 : command->n) : 0;
  float *in = in_width ? malloc(n * (size_t)in_width * sizeof *in) : NULL;
  float *out = out_width ? malloc(n * (size_t)out_width * sizeof *out) : NULL;
  float *own_logits = last && rank && logit_rows ? malloc((size_t)logit_rows * (size_t)config->vocab_size * sizeof(float)) : NULL;
  int status = (in_width && !in) || (out_width && !out) || (last && rank && logit_rows && !own_logits)
                   ? CLTTT_ERROR_OUT_OF_HOST_MEMORY
                   : CLTTT_SUCCESS;
  if (rank > 0) {
    int previous = CLTTT_SUCCESS;
    MPI_Recv(&previous, 1, MPI_INT, rank - 1, TAG_STATUS, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (previous == CLTTT_SUCCESS)
      MPI_Recv(in, (int)(n * (size_t)in_width), MPI_FLOAT, rank - 1, TAG_ROWS, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (status == CLTTT_SUCCESS)
      status = previous;
  }
  if (status == CLTTT_SUCCESS) {
    float *target = last && logit_rows ? (rank ? own_logits : logits) : NULL;
    status = clttt_session_feed_slice(loaded->session, tokens, command->n, in, out, target, command->last_only);
    if (status != CLTTT_SUCCESS && status != CLTTT_ERROR_NOT_FINITE) {
      char what[64];
      snprintf(what, sizeof what, "rank %d: feeding its layers", rank);
      cli_report(what, status);
    }
  }
  if (!last) {
    MPI_Send(&status, 1, MPI_INT, rank + 1, TAG_STATUS, MPI_COMM_WORLD);
    if (status == CLTTT_SUCCESS)
      MPI_Send(out, (int)(n * (size_t)out_width), MPI_FLOAT, rank + 1, TAG_ROWS, MPI_COMM_WORLD);
  } else if (rank > 0) {
    MPI_Send(&status, 1, MPI_INT, 0, TAG_STATUS, MPI_COMM_WORLD);
    if ((status == CLTTT_SUCCESS || status == CLTTT_ERROR_NOT_FINITE) && logit_rows)
      MPI_Send(own_logits, logit_rows * config->vocab_size, MPI_FLOAT, 0, TAG_LOGITS, MPI_COMM_WORLD);
  }
  free(in);
  free(out);
  free(own_logits);
  return status;
}

int pipeline_feed(loaded_model *loaded, const int32_t *tokens, int n, float *logits, int last_only) {
  pipeline_command command = {COMMAND_FEED, n, logits != NULL, last_only};
  MPI_Bcast(&command, 4, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Bcast((void *)tokens, n, MPI_INT32_T, 0, MPI_COMM_WORLD);
  int status = feed_stage(loaded, &command, tokens, logits);
  if (size > 1) {
    /* The last rank's status (and logits): the pipeline's result. */
    const int vocab = clttt_model_get_config(loaded->model)->vocab_size;
    MPI_Recv(&status, 1, MPI_INT, size - 1, TAG_STATUS, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if ((status == CLTTT_SUCCESS || status == CLTTT_ERROR_NOT_FINITE) && logits)
      MPI_Recv(logits, (last_only ? 1 : n) * vocab, MPI_FLOAT, size - 1, TAG_LOGITS, MPI_COMM_WORLD,
               MPI_STATUS_IGNORE);
  }
  return status;
}

void pipeline_close(loaded_model *loaded) {
  if (rank == 0 && loaded->pipeline && running) {
    pipeline_command command = {COMMAND_QUIT, 0, 0, 0};
    MPI_Bcast(&command, 4, MPI_INT, 0, MPI_COMM_WORLD);
    running = 0;
  }
  loaded->pipeline = 0;
}

int pipeline_serve(void) {
  pipeline_setup *setup = calloc(1, sizeof *setup);
  if (!setup)
    return 1;
  MPI_Bcast(setup, (int)sizeof *setup, MPI_BYTE, 0, MPI_COMM_WORLD);
  loaded_model loaded;
  memset(&loaded, 0, sizeof loaded);
  /* layer_count[0] 0: rank 0 refused the command line, and said why. */
  int ok = setup->layer_count[0] > 0 && open_slice(setup, &loaded);
  free(setup);
  int32_t *tokens = NULL;
  int capacity = 0, code = ok ? 0 : 1;
  while (ok) {
    pipeline_command command;
    MPI_Bcast(&command, 4, MPI_INT, 0, MPI_COMM_WORLD);
    if (command.command == COMMAND_QUIT)
      break;
    if (command.n > capacity) {
      int32_t *grown = realloc(tokens, (size_t)command.n * sizeof *tokens);
      if (!grown) {
        fprintf(stderr, "clttt: rank %d: out of host memory for %d tokens\n", rank, command.n);
        code = 1;
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
      tokens = grown;
      capacity = command.n;
    }
    MPI_Bcast(tokens, command.n, MPI_INT32_T, 0, MPI_COMM_WORLD);
    if (feed_stage(&loaded, &command, tokens, NULL) != CLTTT_SUCCESS)
      code = 1;
  }
  free(tokens);
  clttt_session_free(loaded.session);
  clttt_model_free(loaded.model);
  clttt_device_close(loaded.device);
  return code;
}

#else /* without MPI: one process, these are never reached */

int pipeline_start(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  return 1;
}
void pipeline_stop(void) {}
void pipeline_refuse(void) {}
int pipeline_rank(void) { return 0; }
int pipeline_size(void) { return 1; }
int pipeline_open(const model_options *options, int needed_context, loaded_model *loaded) {
  (void)options;
  (void)needed_context;
  (void)loaded;
  return 0;
}
int pipeline_feed(loaded_model *loaded, const int32_t *tokens, int n, float *logits, int last_only) {
  (void)loaded;
  (void)tokens;
  (void)n;
  (void)logits;
  (void)last_only;
  return CLTTT_ERROR_UNSUPPORTED;
}
void pipeline_close(loaded_model *loaded) { (void)loaded; }
int pipeline_serve(void) { return 1; }

#endif
