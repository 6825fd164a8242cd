/* Options shared by every command that runs a model: -m, --device, --devices, --split, --ttt,
 * --chunk, --eta, --ctx, --session-in, --session-out. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void model_options_init(model_options *options) {
  memset(options, 0, sizeof *options);
  options->ttt = -1;
  options->clip_tau = -1.0f;
}

int parse_int(const char *text, const char *option, int minimum, int *value) {
  char *end = NULL;
  errno = 0;
  long parsed = strtol(text, &end, 10);
  if (errno || end == text || *end || parsed < minimum || parsed > 1000000000L) {
    fprintf(stderr, "clttt: %s expects an integer >= %d, got '%s'\n", option, minimum, text);
    return 0;
  }
  *value = (int)parsed;
  return 1;
}

int parse_float(const char *text, const char *option, float *value) {
  char *end = NULL;
  errno = 0;
  float parsed = strtof(text, &end);
  if (errno || end == text || *end || parsed != parsed) {
    fprintf(stderr, "clttt: %s expects a number, got '%s'\n", option, text);
    return 0;
  }
  *value = parsed;
  return 1;
}

int model_options_parse(int argc, char **argv, int *index, model_options *options, int *error) {
  const char *value = NULL;
  int missing = 0;
  if (cli_option_value(argc, argv, index, "-m", &value, &missing) ||
      cli_option_value(argc, argv, index, "--model", &value, &missing)) {
    if (!missing)
      options->model_dir = value;
  } else if (cli_option_value(argc, argv, index, "--devices", &value, &missing)) {
    if (!missing)
      options->devices = value;
  } else if (cli_option_value(argc, argv, index, "--split", &value, &missing)) {
    if (!missing)
      options->split = value;
  } else if (cli_option_value(argc, argv, index, "--device", &value, &missing)) {
    if (!missing)
      options->device = value;
  } else if (cli_option_value(argc, argv, index, "--ttt", &value, &missing)) {
    if (!missing) {
      if (strcmp(value, "on") == 0)
        options->ttt = 1;
      else if (strcmp(value, "off") == 0)
        options->ttt = 0;
      else if (strcmp(value, "both") == 0 && options->allow_ttt_both)
        options->ttt = 2;
      else {
        fprintf(stderr, "clttt: --ttt expects on or off%s, got '%s'\n",
                options->allow_ttt_both ? " or both" : "", value);
        *error = 1;
      }
    }
  } else if (cli_option_value(argc, argv, index, "--chunk", &value, &missing)) {
    if (!missing && !parse_int(value, "--chunk", 1, &options->chunk))
      *error = 1;
  } else if (cli_option_value(argc, argv, index, "--eta", &value, &missing)) {
    if (!missing && !parse_float(value, "--eta", &options->eta))
      *error = 1;
    else if (!missing && (isinf(options->eta) || options->eta < 0.0f)) {
      fprintf(stderr, "clttt: --eta expects a finite number >= 0, got '%s'\n", value);
      *error = 1;
    }
  } else if (cli_option_value(argc, argv, index, "--ttt-clip", &value, &missing)) {
    if (!missing && !parse_float(value, "--ttt-clip", &options->clip_tau))
      *error = 1;
    else if (!missing && (isinf(options->clip_tau) || options->clip_tau < 0.0f)) {
      fprintf(stderr, "clttt: --ttt-clip expects a finite number >= 0 (0 = off), got '%s'\n", value);
      *error = 1;
    }
  } else if (cli_option_value(argc, argv, index, "--kv", &value, &missing)) {
    if (!missing && strcmp(value, "f32") == 0)
      options->kv_f32 = 1;
    else if (!missing && strcmp(value, "f16") == 0)
      options->kv_f32 = 0;
    else if (!missing) {
      fprintf(stderr, "clttt: --kv expects f32 or f16, got '%s'\n", value);
      *error = 1;
    }
  } else if (cli_option_value(argc, argv, index, "--weights", &value, &missing)) {
    if (!missing && clttt_weight_type_parse(value, &options->weights) != CLTTT_SUCCESS) {
      fprintf(stderr, "clttt: --weights expects auto, f32, f16 or bf16, got '%s'\n", value);
      *error = 1;
    }
  } else if (strcmp(argv[*index], "--profile") == 0) {
    options->profile = 1;
  } else if (strcmp(argv[*index], "--check-finite") == 0) {
    options->check_finite = 1;
  } else if (strcmp(argv[*index], "--check-weights") == 0) {
    options->check_weights = 1;
  } else if (cli_option_value(argc, argv, index, "--ctx", &value, &missing)) {
    if (!missing && !parse_int(value, "--ctx", 1, &options->context))
      *error = 1;
  } else if (cli_option_value(argc, argv, index, "--session-in", &value, &missing)) {
    if (!missing)
      options->session_in = value;
  } else if (cli_option_value(argc, argv, index, "--session-out", &value, &missing)) {
    if (!missing)
      options->session_out = value;
  } else {
    return 0;
  }
  if (missing)
    *error = 1;
  return 1;
}

const char *model_options_help =
    "  -m, --model DIR    HuggingFace model directory (config.json + safetensors)\n"
    "  --device SEL       OpenCL device: index or name substring (default: $CLTTT_DEVICE,\n"
    "                     else the first GPU, else device 0; see 'clttt devices')\n"
    "  --devices SEL,...  split the layers over these devices (a pipeline; a selector may\n"
    "                     repeat); the activations cross between them through host memory\n"
    "  --split auto|N,... layers per device of --devices (default auto: in proportion to\n"
    "                     each device's free memory; see 'clttt info --devices')\n"
    "  --ttt on|off       In-Place TTT on (the checkpoint's ttt_mode) or off (base model)\n"
    "  --chunk C          override the TTT chunk size (ttt_chunk)\n"
    "  --eta E            override the TTT step size (ttt_lr)\n"
    "  --ttt-clip TAU     clip each chunk's update to Frobenius norm TAU (ttt_clip_tau;\n"
    "                     0 = off; default: the checkpoint's, usually off)\n"
    "  --ctx N            context length of the session (default: what the input needs)\n"
    "  --kv f16|f32       KV cache element type (default f16: half the memory; logits\n"
    "                     move by ~1e-3 of their range; f32 for exact comparisons)\n"
    "  --weights auto|f32|f16|bf16\n"
    "                     element type of the weight matrices on the device (default\n"
    "                     auto: as the checkpoint stores them; bf16/f16 halve their\n"
    "                     memory; a narrower type than stored changes the logits)\n"
    "  --profile          after the run, print where the device's time went, per kernel and\n"
    "                     product (each op waits for the device: slower than without)\n"
    "  --check-finite     check every layer's output and name the first layer and\n"
    "                     position that are not finite (a device round trip per layer;\n"
    "                     the logits are always checked)\n"
    "  --check-weights    refuse a checkpoint with a NaN or infinite weight, naming it\n"
    "  --session-in F     continue from the session saved in F (its TTT parameters\n"
    "                     and state; its context, grown if the input needs more,\n"
    "                     or --ctx; see 'clttt session info F')\n"
    "  --session-out F    save the session to F when the command succeeds\n";


clttt_session_params model_session_params(const model_options *options, int context) {
  clttt_session_params params = clttt_session_default_params();
  params.context = context;
  params.ttt = options->ttt != 0;
  params.chunk = options->chunk;
  params.eta = options->eta;
  /* The API's 0 means "the checkpoint's", so an explicit 0 (off) is -1 there. */
  params.ttt_clip_tau = options->clip_tau < 0.0f ? 0.0f : options->clip_tau == 0.0f ? -1.0f : options->clip_tau;
  params.logits = options->logits_last_only ? CLTTT_LOGITS_LAST : CLTTT_LOGITS_ALL;
  params.check_finite = options->check_finite;
  params.kv_type = options->kv_f32 ? CLTTT_KV_F32 : CLTTT_KV_F16;
  return params;
}

/* The saved session of --session-in: its TTT parameters are the file's; its
 * context is --ctx, else the file's, grown when the input needs more. */
static int open_saved_session(const model_options *options, int needed_context, loaded_model *loaded) {
  if (options->ttt != -1 || options->chunk || options->eta != 0.0f) {
    fprintf(stderr, "clttt: --session-in takes the TTT parameters from the file: drop --ttt/--chunk/--eta\n");
    return 0;
  }
  clttt_session_file_info info;
  int status = clttt_session_read_info(options->session_in, &info);
  if (status != CLTTT_SUCCESS) {
    cli_report("reading the session file", status);
    return 0;
  }
  int context = options->context;
  if (!context && info.params.context - info.position < needed_context) {
    context = info.position + needed_context;
    fprintf(stderr, "clttt: the session in %s is at position %d of %d tokens: growing its context to %d\n",
            options->session_in, info.position, info.params.context, context);
  }
  if (context && context - info.position < needed_context) {
    fprintf(stderr, "clttt: the session in %s is at position %d: --ctx %d leaves no room for %d more tokens\n",
            options->session_in, info.position, context, needed_context);
    return 0;
  }
  status = clttt_session_load(&loaded->session, loaded->model, options->session_in, context);
  if (status != CLTTT_SUCCESS) {
    cli_report("loading the session file", status);
    return 0;
  }
  clttt_session_params params = clttt_session_get_params(loaded->session);
  int position = clttt_session_position(loaded->session);
  if (!options->logits_last_only && params.logits == CLTTT_LOGITS_LAST) {
    fprintf(stderr, "clttt: the session in %s keeps only last-row logits (saved by generate): "
                    "this command needs every row\n", options->session_in);
    return 0;
  }
  fprintf(stderr, "clttt: continuing the session in %s at position %d\n", options->session_in, position);
  return 1;
}

/* The devices the model runs on: the one of --device, or those of --devices. */
static int opened_devices(loaded_model *loaded, clttt_device *const **devices) {
  *devices = loaded->device ? &loaded->device : loaded->split.device;
  return loaded->device ? 1 : loaded->split.count;
}

int model_open(const model_options *options, int needed_context, loaded_model *loaded) {
  memset(loaded, 0, sizeof *loaded);
  if (!options->model_dir) {
    fprintf(stderr, "clttt: no model given: use -m DIR (see --help)\n");
    return 0;
  }
  if (pipeline_size() > 1)
    return pipeline_open(options, needed_context, loaded);
  clttt_model_params model_params = clttt_model_default_params();
  model_params.check_weights = options->check_weights;
  model_params.weights = options->weights;
  int split_layers[SPLIT_MAX_DEVICES], automatic = 1;
  int status = CLTTT_SUCCESS;
  if (options->devices) {
    if (!split_devices_open(options->devices, &loaded->split))
      return 0;
    if (!split_parse(options->split, loaded->split.count, split_layers, &automatic)) {
      model_close(loaded);
      return 0;
    }
    model_params.devices = loaded->split.device;
    model_params.device_count = loaded->split.count;
    model_params.split = automatic ? NULL : split_layers;
    /* The session this command creates, so that the split plans for it. */
    model_params.split_context = options->session_in ? 0 : options->context ? options->context : needed_context;
    model_params.split_kv_type = options->kv_f32 ? CLTTT_KV_F32 : CLTTT_KV_F16;
  } else {
    if (options->split)
      fprintf(stderr, "clttt: warning: --split has no effect without --devices\n");
    status = clttt_device_open(&loaded->device, options->device);
    if (status != CLTTT_SUCCESS) {
      cli_report("opening the OpenCL device", status);
      return 0;
    }
  }
  status = clttt_model_load(&loaded->model, loaded->device, options->model_dir, &model_params);
  if (status != CLTTT_SUCCESS) {
    cli_report("loading the model", status);
    model_close(loaded);
    return 0;
  }
  loaded->session_out = options->session_out;
  if (options->profile) {
    clttt_device *const *devices = NULL;
    for (int i = 0, count = opened_devices(loaded, &devices); i < count && status == CLTTT_SUCCESS; i++)
      status = clttt_device_set_profiling(devices[i], 1);
    if (status != CLTTT_SUCCESS) {
      cli_report("turning on profiling", status);
      model_close(loaded);
      return 0;
    }
    loaded->profile = 1;
  }
  if (options->session_in) {
    if (!open_saved_session(options, needed_context, loaded)) {
      model_close(loaded);
      return 0;
    }
    return 1;
  }
  const clttt_config *config = clttt_model_get_config(loaded->model);
  int context = options->context ? options->context : needed_context;
  if (context < needed_context) {
    fprintf(stderr, "clttt: the input needs %d tokens of context but --ctx is %d\n", needed_context, context);
    model_close(loaded);
    return 0;
  }
  if (context > config->max_position_embeddings)
    fprintf(stderr, "clttt: warning: a context of %d tokens is beyond the model's max_position_embeddings (%d)\n",
            context, config->max_position_embeddings);
  clttt_session_params params = model_session_params(options, context);
  if (options->chunk || options->eta != 0.0f) {
    if (!config->ttt_mode)
      fprintf(stderr, "clttt: warning: --chunk/--eta have no effect: the checkpoint has no TTT layers\n");
    else
      fprintf(stderr,
              "clttt: warning: overriding TTT parameters (chunk %d, eta %g); the checkpoint was trained "
              "with chunk %d, eta %g\n",
              options->chunk ? options->chunk : config->ttt_chunk,
              (double)(options->eta != 0.0f ? options->eta : config->ttt_lr), config->ttt_chunk,
              (double)config->ttt_lr);
  }
  status = clttt_session_create(&loaded->session, loaded->model, &params);
  if (status != CLTTT_SUCCESS) {
    cli_report("creating the session", status);
    model_close(loaded);
    return 0;
  }
  if (options->ttt == 1 && !config->ttt_mode)
    fprintf(stderr, "clttt: warning: --ttt on, but the checkpoint has no TTT layers (ttt_mode false)\n");
  if (loaded->profile) {
    /* The table starts with the command's own work, not the session's setup. */
    char unused[8];
    clttt_device *const *devices = NULL;
    for (int i = 0, count = opened_devices(loaded, &devices); i < count; i++)
      clttt_device_profile_report(devices[i], unused, sizeof unused, 1);
  }
  return 1;
}

int model_finish(loaded_model *loaded, int exit_code) {
  if (exit_code == 0 && loaded->session && loaded->session_out) {
    int status = clttt_session_save(loaded->session, loaded->session_out);
    if (status != CLTTT_SUCCESS) {
      cli_report("saving the session", status);
      exit_code = 1;
    }
  }
  model_close(loaded);
  return exit_code;
}

int model_feed(loaded_model *loaded, const int32_t *tokens, int n, float *logits, int last_only) {
  if (loaded->pipeline)
    return pipeline_feed(loaded, tokens, n, logits, last_only);
  return clttt_session_feed(loaded->session, tokens, n, logits, last_only);
}

void model_close(loaded_model *loaded) {
  pipeline_close(loaded);
  if (loaded->profile) {
    static char table[16384];
    clttt_device *const *devices = NULL;
    const int count = opened_devices(loaded, &devices);
    for (int i = 0; i < count; i++)
      if (clttt_device_profile_report(devices[i], table, sizeof table, 0) == CLTTT_SUCCESS) {
        if (count > 1)
          fprintf(stderr, "clttt: where device %d's time went (--profile):\n%s", i, table);
        else
          fprintf(stderr, "clttt: where the device's time went (--profile):\n%s", table);
      }
  }
  clttt_session_free(loaded->session);
  clttt_model_free(loaded->model);
  clttt_device_close(loaded->device);
  split_devices_close(&loaded->split);
  memset(loaded, 0, sizeof *loaded);
}
