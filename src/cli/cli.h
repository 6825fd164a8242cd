/* The clttt command line: one function per subcommand. */
#ifndef CLTTT_CLI_H
#define CLTTT_CLI_H

#include "clttt.h"

int command_devices(int argc, char **argv);
int command_logits(int argc, char **argv);
int command_demo(int argc, char **argv);
int command_info(int argc, char **argv);
int command_generate(int argc, char **argv);
int command_ppl(int argc, char **argv);
int command_ruler(int argc, char **argv);
int command_tune(int argc, char **argv);
int command_session(int argc, char **argv);
int command_serve(int argc, char **argv);

/* Options of every command that runs a model. */
typedef struct {
  const char *model_dir;
  const char *device;
  int ttt;            /* -1: the checkpoint's choice, 0 off, 1 on, 2 both (ppl only) */
  int allow_ttt_both;
  int chunk;          /* 0: the checkpoint's */
  float eta;          /* 0: the checkpoint's */
  float clip_tau;     /* -1: the checkpoint's, 0: off, > 0: clip each update to this norm */
  int context;        /* 0: what the input needs */
  int logits_last_only; /* the session returns only last rows (generation) */
  int check_finite;   /* --check-finite: name the layer where values stop being finite */
  int check_weights;  /* --check-weights: refuse non-finite weights at load */
  int kv_f32;         /* --kv f32 (default f16) */
  clttt_weight_type weights; /* --weights (default auto: as the checkpoint stores them) */
  const char *session_in;  /* continue from this session file */
  const char *session_out; /* save the session here when the command succeeds */
  const char *devices;     /* --devices SEL,SEL,...: a layer split; NULL: --device alone */
  const char *split;       /* --split auto|N,N,...; NULL: auto */
  int profile;        /* --profile: per-op time table on stderr at the end */
} model_options;

/* The devices of a layer split, in --devices order. */
#define SPLIT_MAX_DEVICES 64
typedef struct {
  clttt_device *device[SPLIT_MAX_DEVICES];
  int count;
} split_devices;

/* Opens every selector of "SEL,SEL,..." (a repeated one twice); prints
 * what went wrong and returns 0 on failure, with nothing left open. */
int split_devices_open(const char *list, split_devices *devices);
void split_devices_close(split_devices *devices);
/* "auto" (or NULL): *automatic = 1; else device_count layer counts into
 * layers. Prints what is wrong and returns 0 on a malformed list. */
int split_parse(const char *text, int device_count, int *layers, int *automatic);
/* The placement of `count` parts, a line pair per device. */
void split_print_placement(const clttt_split_part *parts, int count, int context);
/* clttt info --devices: plans and prints the placement; the exit code. */
int split_info(const clttt_config *config, clttt_weight_type weights, const char *device_list, const char *split_text,
               int context, clttt_kv_type kv_type);

typedef struct {
  clttt_device *device;
  int pipeline;            /* under mpirun: session is this rank's slice of a pipeline (pipeline.c) */
  split_devices split;     /* with --devices, instead of device */
  clttt_model *model;
  clttt_session *session;
  const char *session_out;
  int profile;
} loaded_model;

void model_options_init(model_options *options);
/* Consumes argv[*index] (and its value) when it is a model option. */
int model_options_parse(int argc, char **argv, int *index, model_options *options, int *error);
extern const char *model_options_help;
/* Opens device, model and a session of max(needed_context, --ctx) tokens,
 * applying --ttt/--chunk/--eta; with --session-in, the saved session, which
 * must have room for needed_context more tokens. Prints what went wrong and
 * returns 0 on failure. */
int model_open(const model_options *options, int needed_context, loaded_model *loaded);
/* With --session-out and exit_code 0, saves the session; then closes.
 * Returns the command's exit code (1 when the save failed). */
int model_finish(loaded_model *loaded, int exit_code);
void model_close(loaded_model *loaded);
/* clttt_session_feed of the loaded session, or of the whole pipeline under mpirun. */
int model_feed(loaded_model *loaded, const int32_t *tokens, int n, float *logits, int last_only);

/* Under 'mpirun -np K' (built --with-mpi): MPI started, this rank and the
 * rank count; 1 process otherwise. pipeline_start returns 0 when MPI
 * failed to start. */
int pipeline_start(int *argc, char ***argv);
void pipeline_stop(void);
/* pipeline_stop when every rank refused the command line by itself. */
void pipeline_refuse(void);
int pipeline_rank(void);
int pipeline_size(void);
/* Rank 0: the pipeline's slices opened on every rank (layers per rank from
 * --split, one --devices selector per rank); 0 and a message on failure. */
int pipeline_open(const model_options *options, int needed_context, loaded_model *loaded);
int pipeline_feed(loaded_model *loaded, const int32_t *tokens, int n, float *logits, int last_only);
/* Rank 0: tells the other ranks to stop. */
void pipeline_close(loaded_model *loaded);
/* Ranks 1..K-1: open their slice as rank 0 says, then feed it until rank 0
 * closes; the process's exit code. */
int pipeline_serve(void);
/* The session parameters the options ask for, with a context of `context`. */
clttt_session_params model_session_params(const model_options *options, int context);
int parse_int(const char *text, const char *option, int minimum, int *value);
int parse_float(const char *text, const char *option, float *value);

/* Prints "clttt: <message>" with the library's last error to stderr. */
void cli_report(const char *what, int status);
/* True when argv[*index] is `name`; then *value is the next argument.
 * A missing value prints an error and sets *missing. */
int cli_option_value(int argc, char **argv, int *index, const char *name, const char **value,
                     int *missing);
int cli_is_help(const char *argument);
/* A monotonic clock in seconds, for the speeds the commands report. */
double cli_now_seconds(void);

#endif
