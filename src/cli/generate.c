/* clttt generate: text in, text out, streamed as it is produced. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clttt.h"

static void help(void) {
  printf("usage: clttt generate -m DIR -p TEXT [-n N] [options]\n"
         "Encodes TEXT with the model's tokenizer (tokenizer.json or tok*.bin), prefills it,\n"
         "then samples N tokens, printing them as they come. Prefill and decode speeds go\n"
         "to standard error at the end.\n\n"
         "  -p, --prompt TEXT       the prompt\n"
         "  -n, --tokens N          tokens to generate (default 128)\n"
         "  --temp T                temperature; 0 = greedy (default 0)\n"
         "  --top-k K               keep the K most likely tokens (0 = off)\n"
         "  --top-p P               keep the smallest set reaching probability P (1 = off)\n"
         "  --min-p P               drop tokens below P x the top probability (0 = off)\n"
         "  --repeat-penalty R      HuggingFace repetition penalty (1 = off)\n"
         "  --repeat-window N       how many recent tokens the penalty looks at (default 64)\n"
         "  --seed S                random seed (default 0): the same seed gives the same text\n"
         "  --no-bos                do not start with the tokenizer's BOS token\n"
         "  --ignore-eos            keep going after the end-of-sequence token\n"
         "%s",
         model_options_help);
}

int command_generate(int argc, char **argv) {
  model_options options;
  model_options_init(&options);
  clttt_sampler_params sampling;
  sampling = clttt_sampler_default_params();
  const char *prompt = NULL;
  int count = 128, add_bos = 1, ignore_eos = 0, error = 0;
  for (int i = 1; i < argc && !error; i++) {
    const char *value = NULL;
    int missing = 0, seed = 0;
    if (cli_is_help(argv[i])) {
      help();
      return 0;
    } else if (model_options_parse(argc, argv, &i, &options, &error)) {
    } else if (cli_option_value(argc, argv, &i, "-p", &value, &missing) ||
               cli_option_value(argc, argv, &i, "--prompt", &value, &missing)) {
      prompt = value;
    } else if (cli_option_value(argc, argv, &i, "-n", &value, &missing) ||
               cli_option_value(argc, argv, &i, "--tokens", &value, &missing)) {
      error = !missing && !parse_int(value, "-n", 0, &count);
    } else if (cli_option_value(argc, argv, &i, "--temp", &value, &missing)) {
      error = !missing && !parse_float(value, "--temp", &sampling.temperature);
    } else if (cli_option_value(argc, argv, &i, "--top-k", &value, &missing)) {
      error = !missing && !parse_int(value, "--top-k", 0, &sampling.top_k);
    } else if (cli_option_value(argc, argv, &i, "--top-p", &value, &missing)) {
      error = !missing && !parse_float(value, "--top-p", &sampling.top_p);
    } else if (cli_option_value(argc, argv, &i, "--min-p", &value, &missing)) {
      error = !missing && !parse_float(value, "--min-p", &sampling.min_p);
    } else if (cli_option_value(argc, argv, &i, "--repeat-penalty", &value, &missing)) {
      error = !missing && !parse_float(value, "--repeat-penalty", &sampling.repetition_penalty);
    } else if (cli_option_value(argc, argv, &i, "--repeat-window", &value, &missing)) {
      error = !missing && !parse_int(value, "--repeat-window", 0, &sampling.repetition_window);
    } else if (cli_option_value(argc, argv, &i, "--seed", &value, &missing)) {
      error = !missing && !parse_int(value, "--seed", 0, &seed);
      sampling.seed = (uint64_t)seed;
    } else if (strcmp(argv[i], "--no-bos") == 0) {
      add_bos = 0;
    } else if (strcmp(argv[i], "--ignore-eos") == 0) {
      ignore_eos = 1;
    } else {
      fprintf(stderr, "clttt generate: unknown option '%s' (see --help)\n", argv[i]);
      error = 1;
    }
    error |= missing;
  }
  if (error)
    return 2;
  if (!prompt) {
    fprintf(stderr, "clttt generate: no prompt: use -p TEXT (see --help)\n");
    return 2;
  }
  if (!options.model_dir) {
    fprintf(stderr, "clttt generate: no model given: use -m DIR (see --help)\n");
    return 2;
  }

  /* Tokenizer and sampler first: their errors need no device. */
  clttt_tokenizer *tok = NULL;
  int status = clttt_tokenizer_load(&tok, options.model_dir);
  if (status != CLTTT_SUCCESS) {
    cli_report("loading the tokenizer", status);
    return 1;
  }
  int32_t *prompt_ids = NULL;
  int prompt_count = 0;
  /* A saved session already has its beginning: no second BOS in the middle. */
  status = clttt_tokenizer_encode(tok, prompt, add_bos && !options.session_in, &prompt_ids, &prompt_count);
  if (status != CLTTT_SUCCESS) {
    cli_report("encoding the prompt", status);
    clttt_tokenizer_free(tok);
    return 1;
  }
  int exit_code = 1;
  clttt_sampler *sample = NULL;
  /* Bad sampling options are the user's to fix before any model loads. */
  status = clttt_sampler_create(&sample, &sampling, clttt_tokenizer_vocab_size(tok));
  clttt_sampler_free(sample);
  sample = NULL;
  if (status != CLTTT_SUCCESS) {
    fprintf(stderr, "clttt generate: %s\n", clttt_last_error());
    free(prompt_ids);
    clttt_tokenizer_free(tok);
    return 2;
  }
  clttt_tokenizer_stream *stream = NULL;
  loaded_model loaded = {0};
  int32_t *history = NULL;
  float *logits = NULL;
  if (prompt_count == 0) {
    fprintf(stderr, "clttt generate: the prompt is empty and the tokenizer has no BOS token to start from\n");
    goto done;
  }
  if (options.context && prompt_count + count > options.context) {
    fprintf(stderr, "clttt generate: the prompt (%d tokens) plus %d new tokens exceed the context (--ctx %d)\n",
            prompt_count, count, options.context);
    goto done;
  }
  options.logits_last_only = 1;
  if (!model_open(&options, prompt_count + count, &loaded))
    goto done;
  const clttt_config *config = clttt_model_get_config(loaded.model);
  for (int i = 0; i < prompt_count; i++)
    if (prompt_ids[i] >= config->vocab_size) {
      fprintf(stderr, "clttt generate: the tokenizer produced id %d but the model's vocabulary has %d entries\n",
              prompt_ids[i], config->vocab_size);
      goto done;
    }
  status = clttt_sampler_create(&sample, &sampling, config->vocab_size);
  if (status == CLTTT_SUCCESS)
    status = clttt_tokenizer_stream_create(&stream, tok);
  if (status != CLTTT_SUCCESS) {
    cli_report("setting up sampling", status);
    goto done;
  }
  history = malloc((size_t)(prompt_count + count) * sizeof *history);
  logits = malloc((size_t)config->vocab_size * sizeof *logits);
  if (!history || !logits) {
    fprintf(stderr, "clttt generate: out of host memory\n");
    goto done;
  }
  memcpy(history, prompt_ids, (size_t)prompt_count * sizeof *history);
  /* Real checkpoints pad their vocabulary past the tokenizer's (Qwen: 151936
   * rows for 151669 tokens): ids the tokenizer cannot decode are never drawn. */
  const int decodable = clttt_tokenizer_vocab_size(tok) < config->vocab_size ? clttt_tokenizer_vocab_size(tok)
                                                                            : config->vocab_size;

  /* The prompt is echoed through the same stream, so the output reads as one text. */
  const char *text = NULL;
  for (int i = 0; i < prompt_count; i++)
    if (clttt_tokenizer_stream_put(stream, prompt_ids[i], &text) == CLTTT_SUCCESS)
      fputs(text, stdout);
  fflush(stdout);

  double start = cli_now_seconds();
  status = model_feed(&loaded, prompt_ids, prompt_count, logits, 1);
  double prefill_seconds = cli_now_seconds() - start;
  int produced = 0;
  start = cli_now_seconds();
  while (status == CLTTT_SUCCESS && produced < count) {
    int32_t token = 0;
    for (int v = decodable; v < config->vocab_size; v++)
      logits[v] = -INFINITY;
    status = clttt_sampler_sample(sample, logits, history, prompt_count + produced, &token);
    if (status != CLTTT_SUCCESS)
      break;
    if (!ignore_eos && token == clttt_tokenizer_eos(tok))
      break;
    history[prompt_count + produced++] = token;
    status = clttt_tokenizer_stream_put(stream, token, &text);
    if (status != CLTTT_SUCCESS)
      break;
    fputs(text, stdout);
    fflush(stdout);
    if (produced < count)
      status = model_feed(&loaded, &token, 1, logits, 1);
    else if (options.session_out)
      /* The saved session holds every token printed, the last one too. */
      status = model_feed(&loaded, &token, 1, NULL, 1);
  }
  double decode_seconds = cli_now_seconds() - start;
  if (clttt_tokenizer_stream_flush(stream, &text) == CLTTT_SUCCESS)
    fputs(text, stdout);
  printf("\n");
  fflush(stdout);
  if (status != CLTTT_SUCCESS) {
    cli_report("generating", status);
    goto done;
  }
  fprintf(stderr, "prefill: %d tokens in %.3f s (%.1f tokens/s); decode: %d tokens in %.3f s (%.1f tokens/s)%s\n",
          prompt_count, prefill_seconds, prompt_count / prefill_seconds, produced, decode_seconds,
          produced > 0 ? produced / decode_seconds : 0.0,
          clttt_session_ttt_enabled(loaded.session) ? ", TTT on" : "");
  exit_code = 0;
done:
  free(logits);
  free(history);
  clttt_tokenizer_stream_free(stream);
  clttt_sampler_free(sample);
  exit_code = model_finish(&loaded, exit_code);
  free(prompt_ids);
  clttt_tokenizer_free(tok);
  return exit_code;
}
