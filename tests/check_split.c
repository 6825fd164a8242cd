/* Layer split over two OpenCL devices: a split model's logits equal the
 * single-device model's for both architectures with TTT on, fed token by
 * token and all at once, including splits whose second device starts with
 * a TTT layer, a tied head copied to the last device, the input embeddings
 * crossing with the residual stream, and a device listed twice; session
 * files, forks and resets work across the split; a split that does not
 * cover the layers or a device that cannot hold its share fails, named,
 * before anything is allocated; the automatic split follows free memory.
 *
 * PoCL gives two devices on one CPU with POCL_DEVICES="pthread pthread",
 * which main sets before the first OpenCL call; elsewhere (one device) the
 * split runs over the same device opened twice: two contexts, two queues,
 * the activations still crossing through host memory. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-config.h"
#include "fixture.h"
#include "session.h"
#include "test_model.h"
#include "test_util.h"

#define TOKENS 40

/* The two devices of the split: indices 0 and 1 when there are two. */
static void open_pair(clttt_device **devices) {
  int count = 0;
  ck_assert_int_eq(clttt_list_devices(NULL, 0, &count), CLTTT_SUCCESS);
  const char *second = count >= 2 ? "1" : "0";
  ck_assert_int_eq(clttt_device_open(&devices[0], "0"), CLTTT_SUCCESS);
  int status = clttt_device_open(&devices[1], second);
  ck_assert_msg(status == CLTTT_SUCCESS, "device %s: %s", second, clttt_last_error());
}

/* Same device model and driver: the same kernels and tuned parameters run
 * on both sides, so the split must give the very same numbers. */
static int same_kind(const clttt_device *a, const clttt_device *b) {
  const clttt_device_info *x = clttt_device_get_info(a), *y = clttt_device_get_info(b);
  return strcmp(x->name, y->name) == 0 && strcmp(x->driver_version, y->driver_version) == 0;
}

static clttt_model *load_split(const char *dir, clttt_device **devices, int count, const int *split,
                               clttt_weight_type weights) {
  clttt_model_params params = clttt_model_default_params();
  params.weights = weights;
  params.devices = devices;
  params.device_count = count;
  params.split = split;
  clttt_model *model = NULL;
  int status = clttt_model_load(&model, NULL, dir, &params);
  ck_assert_msg(status == CLTTT_SUCCESS, "split load of %s: %s: %s", dir, clttt_status_name(status),
                clttt_last_error());
  return model;
}

static void sequence(int32_t *tokens, int n, int vocab) {
  for (int i = 0; i < n; i++)
    tokens[i] = (int32_t)((i * 53 + 11) % vocab);
}

typedef struct {
  const char *fixture;
  int split[3];
  int parts;
  int repeat_first; /* the third part on the first device again */
  int embeddings_cross; /* TTT layers past the first device learn from the input embeddings */
  clttt_weight_type weights; /* of both models; AUTO: as stored */
} split_case;

static const split_case cases[] = {
    /* Qwen3, TTT in layers 0 and 2: the second device starts with TTT layer 2. */
    {"ttt-proj-hidden", {2, 1}, 2, 0, 0, CLTTT_WEIGHTS_AUTO},
    /* Qwen3, TTT in layer 1 only, target input_embed: the second device
     * starts with the TTT layer, which needs the embeddings carried over. */
    {"ttt-noproj-embed", {1, 2}, 2, 0, 1, CLTTT_WEIGHTS_AUTO},
    /* LLaMA, TTT in layers 0 and 1, input_embed, MLP bias, untied head. */
    {"ttt-llama-embed", {1, 1}, 2, 0, 1, CLTTT_WEIGHTS_AUTO},
    /* Base models: a tied head copied to the last device; biases; YaRN, untied. */
    {"qwen3-tied", {1, 1}, 2, 0, 0, CLTTT_WEIGHTS_AUTO},
    {"llama-bias", {1, 1}, 2, 0, 0, CLTTT_WEIGHTS_AUTO},
    /* Three parts over two devices, the first listed twice (its tied head
     * then shares the embedding's buffer). */
    {"ttt-proj-hidden", {1, 1, 1}, 3, 1, 0, CLTTT_WEIGHTS_AUTO},
    /* Automatic split (split[0] == 0): equal devices, layers 2 + 1; BF16
     * as stored, so bf16 matrices on both devices. */
    {"qwen3-yarn", {0}, 2, 0, 0, CLTTT_WEIGHTS_AUTO},
    /* bf16 matrices from an fp32 checkpoint: the tied head's copy on the
     * last device is packed like the embedding; TTT fast weights widened. */
    {"qwen3-tied", {1, 1}, 2, 0, 0, CLTTT_WEIGHTS_BF16},
    {"ttt-noproj-embed", {2, 1}, 2, 0, 0, CLTTT_WEIGHTS_BF16},
};

START_TEST(test_split_equals_single_device) {
  const split_case *c = &cases[_i];
  test_fixture_model single;
  test_fixture_open(&single, c->fixture);
  clttt_device *pair[2];
  open_pair(pair);
  clttt_device *devices[3] = {pair[0], pair[1], c->repeat_first ? pair[0] : pair[1]};
  if (c->weights != CLTTT_WEIGHTS_AUTO) {
    clttt_model_free(single.model);
    clttt_model_params params = clttt_model_default_params();
    params.weights = c->weights;
    ck_assert_int_eq(clttt_model_load(&single.model, single.device, single.dir, &params), CLTTT_SUCCESS);
  }
  clttt_model *split = load_split(single.dir, devices, c->parts, c->split[0] ? c->split : NULL, c->weights);
  ck_assert_int_eq(clttt_model_weight_type(split), clttt_model_weight_type(single.model));
  ck_assert_int_eq(clttt_model_part_count(split), c->parts);
  clttt_split_part part;
  ck_assert_int_eq(clttt_model_get_part(split, 1, &part), CLTTT_SUCCESS);
  ck_assert_int_eq(part.first_layer, c->split[0] ? c->split[0] : 2);
  ck_assert_int_eq(clttt_model_weight_bytes(split), clttt_model_weight_bytes(single.model));

  const clttt_config *config = clttt_model_get_config(single.model);
  const int vocab = config->vocab_size, d = config->hidden_size;
  int32_t tokens[TOKENS];
  sequence(tokens, TOKENS, vocab);
  /* The tolerance: 0 when both devices run the same kernels, else the
   * rounding of a different order of fp32 sums, 1e-5 of the logits' range. */
  const int exact = same_kind(pair[0], pair[1]);
  for (int p = 0; p < 2; p++) {
    test_run_options options = test_run_default;
    options.ttt = 1;
    options.piece = p == 0 ? 1 : 0;
    float *expected = test_run(single.model, tokens, TOKENS, options);
    float *got = test_run(split, tokens, TOKENS, options);
    const size_t count = (size_t)TOKENS * (size_t)vocab;
    const double tolerance = exact ? 0.0 : 1e-5 * test_max_abs(expected, count);
    const double difference = test_rows_difference(expected, got, vocab, 0, TOKENS);
    ck_assert_msg(difference <= tolerance, "%s, pieces of %d: split differs by %g (tolerance %g)", c->fixture,
                  options.piece ? options.piece : TOKENS, difference, tolerance);
    /* TTT moved the logits: the comparison covers the fast weights. */
    if (config->ttt_mode) {
      options.ttt = 0;
      float *base = test_run(split, tokens, TOKENS, options);
      ck_assert_msg(test_rows_difference(base, got, vocab, 0, TOKENS) > 1e-3, "%s: TTT changed nothing",
                    c->fixture);
      free(base);
    }
    free(expected);
    free(got);
  }

  /* Each device gives a session exactly what the plan of the same split
   * says (parts on one device summed). */
  clttt_split_part planned[3];
  int layers[3];
  for (int p = 0; p < c->parts; p++) {
    ck_assert_int_eq(clttt_model_get_part(split, p, &part), CLTTT_SUCCESS);
    layers[p] = part.layer_count;
  }
  ck_assert_int_eq(clttt_plan_split(config, CLTTT_WEIGHTS_F32, devices, c->parts, layers, TOKENS, planned), CLTTT_SUCCESS);
  uint64_t before[2], after[2];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(clttt_device_memory(pair[i], &before[i], NULL, 0), CLTTT_SUCCESS);
  clttt_session_params params = clttt_session_default_params();
  params.context = TOKENS;
  clttt_session *session = NULL;
  ck_assert_int_eq(clttt_session_create(&session, split, &params), CLTTT_SUCCESS);
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(clttt_device_memory(pair[i], &after[i], NULL, 0), CLTTT_SUCCESS);
    uint64_t expected = 0;
    for (int p = 0; p < c->parts; p++)
      expected += devices[p] == pair[i] ? planned[p].session_bytes : 0;
    ck_assert_msg(after[i] - before[i] == expected, "%s: device %d holds %llu session bytes, the plan says %llu",
                  c->fixture, i, (unsigned long long)(after[i] - before[i]), (unsigned long long)expected);
  }

  /* What crossed: d floats per token and boundary, twice with the embeddings. */
  ck_assert_int_eq(clttt_session_feed(session, tokens, TOKENS, NULL, 0), CLTTT_SUCCESS);
  uint64_t per_boundary = (uint64_t)TOKENS * (uint64_t)d * sizeof(float) * (c->embeddings_cross ? 2 : 1);
  ck_assert_uint_eq(clttt_session_bytes_moved(session), per_boundary * (uint64_t)(c->parts - 1));
  clttt_session_free(session);

  clttt_model_free(split);
  clttt_device_close(pair[0]);
  clttt_device_close(pair[1]);
  test_fixture_close(&single);
}
END_TEST

/* Saves a split session in the middle of a chunk, loads it into the
 * single-device model and back into the split one; forks and resets. */
START_TEST(test_split_session_files) {
  test_fixture_model single;
  test_fixture_open(&single, "ttt-noproj-embed");
  clttt_device *pair[2];
  open_pair(pair);
  static const int layers[] = {1, 2};
  clttt_model *split = load_split(single.dir, pair, 2, layers, CLTTT_WEIGHTS_AUTO);
  const int vocab = clttt_model_get_config(split)->vocab_size;
  int32_t tokens[TOKENS];
  sequence(tokens, TOKENS, vocab);
  const int half = 17; /* C = 12: mid-chunk */
  float *whole = malloc((size_t)TOKENS * (size_t)vocab * sizeof *whole);
  float *continued = malloc((size_t)TOKENS * (size_t)vocab * sizeof *continued);
  ck_assert_ptr_nonnull(whole);
  ck_assert_ptr_nonnull(continued);

  clttt_session *original = NULL;
  ck_assert_int_eq(test_session_create(&original, split, TOKENS), CLTTT_SUCCESS);
  ck_assert_int_eq(clttt_session_feed(original, tokens, half, whole, 0), CLTTT_SUCCESS);
  char path[600];
  snprintf(path, sizeof path, "%s/split.session", single.dir);
  ck_assert_msg(clttt_session_save(original, path) == CLTTT_SUCCESS, "save: %s", clttt_last_error());
  clttt_session *fork = NULL;
  ck_assert_int_eq(clttt_session_fork(&fork, original), CLTTT_SUCCESS);
  ck_assert_int_eq(clttt_session_feed(original, tokens + half, TOKENS - half, whole + (size_t)half * vocab, 0),
                   CLTTT_SUCCESS);
  const int exact = same_kind(pair[0], pair[1]);
  const double tolerance = exact ? 0.0 : 1e-5 * test_max_abs(whole, (size_t)TOKENS * (size_t)vocab);

  /* The file is the same whatever the placement: load it on one device. */
  clttt_session *targets[3] = {NULL, NULL, fork};
  int status = clttt_session_load(&targets[0], single.model, path, 0);
  ck_assert_msg(status == CLTTT_SUCCESS, "load on one device: %s", clttt_last_error());
  status = clttt_session_load(&targets[1], split, path, 0);
  ck_assert_msg(status == CLTTT_SUCCESS, "load on the split: %s", clttt_last_error());
  for (int t = 0; t < 3; t++) {
    ck_assert_int_eq(clttt_session_position(targets[t]), half);
    ck_assert_int_eq(clttt_session_feed(targets[t], tokens + half, TOKENS - half, continued, 0), CLTTT_SUCCESS);
    double difference = test_rows_difference(whole + (size_t)half * vocab, continued, vocab, 0, TOKENS - half);
    ck_assert_msg(difference <= tolerance, "continuation %d differs by %g", t, difference);
    clttt_session_free(targets[t]);
  }

  /* A reset split session starts over exactly. */
  ck_assert_int_eq(clttt_session_reset(original), CLTTT_SUCCESS);
  ck_assert_int_eq(clttt_session_feed(original, tokens, TOKENS, continued, 0), CLTTT_SUCCESS);
  float *fresh = test_run(split, tokens, TOKENS, test_run_default);
  ck_assert(test_rows_difference(fresh, continued, vocab, 0, TOKENS) == 0.0);
  free(fresh);
  clttt_session_free(original);
  free(whole);
  free(continued);
  clttt_model_free(split);
  clttt_device_close(pair[0]);
  clttt_device_close(pair[1]);
  test_fixture_close(&single);
}
END_TEST

static void assert_nothing_allocated(clttt_device **devices) {
  for (int i = 0; i < 2; i++) {
    uint64_t current = 1;
    ck_assert_int_eq(clttt_device_memory(devices[i], &current, NULL, 0), CLTTT_SUCCESS);
    ck_assert_uint_eq(current, 0);
  }
}

START_TEST(test_split_bad_input) {
  test_fixture_model single;
  test_fixture_open(&single, "ttt-proj-hidden"); /* 3 layers */
  clttt_device *pair[2];
  open_pair(pair);
  static const int short_split[] = {1, 1}, long_split[] = {2, 2}, empty_part[] = {3, 0};
  const int *bad[] = {short_split, long_split, empty_part};
  const char *said[] = {"cover every layer", "more than the model's 3 layers", "at least one"};
  clttt_model_params params = clttt_model_default_params();
  params.devices = pair;
  params.device_count = 2;
  for (int i = 0; i < 3; i++) {
    params.split = bad[i];
    clttt_model *model = (clttt_model *)1;
    ck_assert_int_eq(clttt_model_load(&model, NULL, single.dir, &params), CLTTT_ERROR_INVALID_ARGUMENT);
    ck_assert_ptr_null(model);
    ck_assert_msg(strstr(clttt_last_error(), said[i]), "message: %s", clttt_last_error());
    assert_nothing_allocated(pair);
  }
  /* Four devices for three layers. */
  clttt_device *four[] = {pair[0], pair[1], pair[0], pair[1]};
  params.devices = four;
  params.device_count = 4;
  params.split = NULL;
  clttt_model *model = NULL;
  ck_assert_int_eq(clttt_model_load(&model, NULL, single.dir, &params), CLTTT_ERROR_INVALID_ARGUMENT);

  /* A second device of 64 KiB cannot hold its layer: named, sized, and
   * nothing allocated on either device. */
  const uint64_t saved = pair[1]->info.global_memory;
  pair[1]->info.global_memory = 64 << 10;
  params.devices = pair;
  params.device_count = 2;
  static const int good[] = {2, 1};
  params.split = good;
  ck_assert_int_eq(clttt_model_load(&model, NULL, single.dir, &params), CL_MEM_OBJECT_ALLOCATION_FAILURE);
  const char *message = clttt_last_error();
  ck_assert_msg(strstr(message, pair[1]->info.name) && strstr(message, "needs") && strstr(message, "0.1 MiB free"),
                "message: %s", message);
  assert_nothing_allocated(pair);
  /* With a session to plan for, the automatic split fails the same way. */
  params.split = NULL;
  params.split_context = 64;
  ck_assert_int_eq(clttt_model_load(&model, NULL, single.dir, &params), CL_MEM_OBJECT_ALLOCATION_FAILURE);
  ck_assert_msg(strstr(clttt_last_error(), "a session of 64 tokens"), "message: %s", clttt_last_error());
  assert_nothing_allocated(pair);
  pair[1]->info.global_memory = saved;

  clttt_device_close(pair[0]);
  clttt_device_close(pair[1]);
  test_fixture_close(&single);
}
END_TEST

/* The plan without a model: one part costs what the estimates say; the
 * automatic split follows the devices' free memory. */
START_TEST(test_split_plan) {
  clttt_config config;
  ck_assert_int_eq(clttt_synthetic_config(&config, 256, 512, 8, 4, 2, 64, 1000, 1024, 2, 64, 0.01f),
                   CLTTT_SUCCESS);
  clttt_device *pair[2];
  open_pair(pair);
  clttt_split_part parts[2];
  ck_assert_int_eq(clttt_plan_split(&config, CLTTT_WEIGHTS_F32, pair, 1, NULL, 512, parts), CLTTT_SUCCESS);
  ck_assert_int_eq(parts[0].layer_count, 8);
  ck_assert_uint_eq(parts[0].weight_bytes, clttt_estimate_weight_bytes(&config, CLTTT_WEIGHTS_F32, pair[0]));
  clttt_session_params params = clttt_session_default_params();
  params.context = 512;
  ck_assert_uint_eq(parts[0].session_bytes, clttt_estimate_session_bytes(&config, &params));
  /* A session of another KV type costs what its own estimate says. */
  ck_assert_int_eq(clttt_plan_split_kv(&config, CLTTT_WEIGHTS_F32, pair, 1, NULL, 512, CLTTT_KV_F32, parts),
                   CLTTT_SUCCESS);
  params.kv_type = CLTTT_KV_F32;
  ck_assert_uint_eq(parts[0].session_bytes, clttt_estimate_session_bytes(&config, &params));
  ck_assert_int_eq(clttt_plan_split_kv(&config, CLTTT_WEIGHTS_F32, pair, 1, NULL, 512, (clttt_kv_type)7, parts),
                   CLTTT_ERROR_INVALID_ARGUMENT);

  /* Equal devices: equal halves. */
  const uint64_t saved[2] = {pair[0]->info.global_memory, pair[1]->info.global_memory};
  pair[0]->info.global_memory = pair[1]->info.global_memory = (uint64_t)4 << 30;
  ck_assert_int_eq(clttt_plan_split(&config, CLTTT_WEIGHTS_F32, pair, 2, NULL, 512, parts), CLTTT_SUCCESS);
  ck_assert_int_eq(parts[0].layer_count, 4);
  ck_assert_int_eq(parts[1].first_layer, 4);
  ck_assert(parts[0].has_embedding && !parts[0].has_head && parts[1].has_head && !parts[1].has_embedding);
  /* Three times the memory: three quarters of the layers. */
  pair[0]->info.global_memory = (uint64_t)3 << 30;
  pair[1]->info.global_memory = (uint64_t)1 << 30;
  ck_assert_int_eq(clttt_plan_split(&config, CLTTT_WEIGHTS_F32, pair, 2, NULL, 512, parts), CLTTT_SUCCESS);
  ck_assert_int_eq(parts[0].layer_count, 6);
  ck_assert_int_eq(parts[1].layer_count, 2);
  /* The weights of the parts add up to the model's, plus the tied head's copy. */
  const uint64_t head_copy = (uint64_t)config.vocab_size * (uint64_t)config.hidden_size * sizeof(float);
  ck_assert_uint_eq(parts[0].weight_bytes + parts[1].weight_bytes,
                    clttt_estimate_weight_bytes(&config, CLTTT_WEIGHTS_F32, pair[0]) + head_copy +
                        (uint64_t)config.head_dim / 2 * sizeof(float));
  pair[0]->info.global_memory = saved[0];
  pair[1]->info.global_memory = saved[1];
  clttt_config_free(&config);
  clttt_device_close(pair[0]);
  clttt_device_close(pair[1]);
}
END_TEST

/* Model slices (one pipeline stage each, as 'mpirun clttt' runs them),
 * chained in this process through their activations, give the logits of
 * the whole model. */
typedef struct {
  const char *fixture;
  int layers[3]; /* per slice */
  int slices;
} slice_case;

static const slice_case slice_cases[] = {
    {"ttt-proj-hidden", {2, 1}, 2},  /* the second slice starts with TTT layer 2 */
    {"ttt-noproj-embed", {1, 2}, 2}, /* input embeddings cross: 2d floats per token */
    {"ttt-noproj-embed", {1, 1, 1}, 3}, /* 2d into layer 1, d into layer 2 (no TTT layer after) */
    {"ttt-llama-embed", {1, 1}, 2},
};

START_TEST(test_slices_chain_to_the_whole_model) {
  const slice_case *c = &slice_cases[_i];
  test_fixture_model single;
  test_fixture_open(&single, c->fixture);
  clttt_device *pair[2];
  open_pair(pair);
  clttt_model *slices[3];
  clttt_session *sessions[3];
  int first = 0;
  for (int k = 0; k < c->slices; k++) {
    clttt_model_params params = clttt_model_default_params();
    params.first_layer = first;
    params.layer_count = c->layers[k];
    int status = clttt_model_load(&slices[k], pair[k % 2], single.dir, &params);
    ck_assert_msg(status == CLTTT_SUCCESS, "slice %d: %s", k, clttt_last_error());
    ck_assert_int_eq(test_session_create(&sessions[k], slices[k], TOKENS), CLTTT_SUCCESS);
    first += c->layers[k];
  }
  const clttt_config *config = clttt_model_get_config(single.model);
  const int vocab = config->vocab_size, d = config->hidden_size;
  int32_t tokens[TOKENS];
  sequence(tokens, TOKENS, vocab);
  clttt_session *whole = NULL;
  ck_assert_int_eq(test_session_create(&whole, single.model, TOKENS), CLTTT_SUCCESS);
  float *expected = malloc((size_t)TOKENS * (size_t)vocab * sizeof *expected);
  float *got = malloc((size_t)TOKENS * (size_t)vocab * sizeof *got);
  float *rows[2] = {malloc((size_t)TOKENS * 2 * (size_t)d * sizeof(float)),
                    malloc((size_t)TOKENS * 2 * (size_t)d * sizeof(float))};
  ck_assert(expected && got && rows[0] && rows[1]);
  /* Token by token for the first half, then the rest in one piece; the
   * whole model in the same pieces, so that each product sums alike. */
  for (int done = 0; done < TOKENS;) {
    const int piece = done < TOKENS / 2 ? 1 : TOKENS - done;
    ck_assert_int_eq(clttt_session_feed(whole, tokens + done, piece, expected + (size_t)done * vocab, 0),
                     CLTTT_SUCCESS);
    first = 0;
    for (int k = 0; k < c->slices; k++) {
      const int last = k == c->slices - 1;
      int status = clttt_session_feed_slice(sessions[k], tokens + done, piece, k ? rows[(k - 1) % 2] : NULL,
                                            last ? NULL : rows[k % 2], last ? got + (size_t)done * vocab : NULL, 0);
      ck_assert_msg(status == CLTTT_SUCCESS, "slice %d at %d: %s", k, done, clttt_last_error());
      first += c->layers[k];
      if (!last)
        ck_assert_int_eq(clttt_session_activation_width(sessions[k], first),
                         clttt_session_activation_width(sessions[k + 1], first));
    }
    done += piece;
  }
  const double tolerance = same_kind(pair[0], pair[1]) ? 0.0 : 1e-5 * test_max_abs(expected, (size_t)TOKENS * vocab);
  const double difference = test_rows_difference(expected, got, vocab, 0, TOKENS);
  ck_assert_msg(difference <= tolerance, "%s: slices differ by %g", c->fixture, difference);

  /* A slice refuses what it cannot do, by name. */
  float logits[256];
  ck_assert_int_eq(clttt_session_feed(sessions[1], tokens, 1, logits, 1), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_msg(strstr(clttt_last_error(), "clttt_session_feed_slice"), "%s", clttt_last_error());
  ck_assert_int_eq(clttt_session_save(sessions[0], "/nonexistent/x"), CLTTT_ERROR_UNSUPPORTED);
  clttt_session_free(whole);
  for (int k = 0; k < c->slices; k++) {
    clttt_session_free(sessions[k]);
    clttt_model_free(slices[k]);
  }
  clttt_model_params params = clttt_model_default_params();
  params.first_layer = 2;
  params.layer_count = 2;
  clttt_model *bad = NULL;
  ck_assert_int_eq(clttt_model_load(&bad, pair[0], single.dir, &params), CLTTT_ERROR_INVALID_ARGUMENT);
  free(expected);
  free(got);
  free(rows[0]);
  free(rows[1]);
  clttt_device_close(pair[0]);
  clttt_device_close(pair[1]);
  test_fixture_close(&single);
}
END_TEST

/* The commands: clttt logits over --devices equals the single-device run;
 * clttt info --devices prints the placement; a bad split is named. */
START_TEST(test_split_commands) {
  char scratch[512];
  test_make_temporary_directory(scratch, sizeof scratch);
  const fixture_spec *spec = fixture_find("ttt-proj-hidden");
  ck_assert_int_eq(fixture_write(spec, scratch), CLTTT_SUCCESS);
  int count = 0;
  ck_assert_int_eq(clttt_list_devices(NULL, 0, &count), CLTTT_SUCCESS);
  const char *pair = count >= 2 ? "0,1" : "0,0";
  static const char tokens[] = "5,17,3,99,42,7,7,1,250,31,64,2,8,19,23,200,11,13,17,19";
  test_command single = test_run_clttt(scratch, "logits -m '%s' --tokens %s --ttt on --pieces 1 --device 0", scratch, tokens);
  ck_assert_msg(single.exit_code == 0, "single: %s", single.err);
  test_command split =
      test_run_clttt(scratch, "logits -m '%s' --tokens %s --ttt on --pieces 1 --devices %s --split 2,1", scratch, tokens, pair);
  ck_assert_msg(split.exit_code == 0, "split: %s", split.err);
  const size_t bytes = 20 * (size_t)spec->config.vocab_size * sizeof(float);
  ck_assert_uint_eq(single.out_size, bytes);
  ck_assert_uint_eq(split.out_size, bytes);
  clttt_device *devices[2];
  open_pair(devices);
  const double tolerance =
      same_kind(devices[0], devices[1]) ? 0.0 : 1e-5 * test_max_abs((const float *)single.out, bytes / sizeof(float));
  ck_assert(test_max_abs_difference((const float *)single.out, (const float *)split.out, bytes / sizeof(float)) <=
            tolerance);
  clttt_device_close(devices[0]);
  clttt_device_close(devices[1]);
  test_command_free(&single);
  test_command_free(&split);

  test_command info = test_run_clttt(scratch, "info -m '%s' --ctx 64 --devices %s", scratch, pair);
  ck_assert_msg(info.exit_code == 0, "info: %s", info.err);
  ck_assert_msg(strstr(info.out, "placement:    2 devices") && strstr(info.out, "layers 0..1 + embedding") &&
                    strstr(info.out, "layers 2..2 + LM head") && strstr(info.out, "session of 64 tokens"),
                "info: %s", info.out);
  test_command_free(&info);
  /* The placement's session is the one --kv asks for: on one device it is
   * the figure of the estimate above it (a context long enough for the KV
   * cache to show in MiB). */
  double sessions[2] = {0, 0};
  for (int f32 = 0; f32 < 2; f32++) {
    info = test_run_clttt(scratch, "info -m '%s' --ctx 32768 --kv %s --devices %.*s", scratch, f32 ? "f32" : "f16",
                          (int)(strchr(pair, ',') - pair), pair);
    ck_assert_msg(info.exit_code == 0, "info: %s", info.err);
    const char *estimate = strstr(info.out, "MiB weights (");
    const char *placed = strstr(info.out, "MiB weights + ");
    double estimated = 0, planned = 0;
    ck_assert_msg(estimate && placed && sscanf(strchr(estimate, '+') + 1, "%lf", &estimated) == 1 &&
                      sscanf(placed + strlen("MiB weights + "), "%lf", &planned) == 1,
                  "info: %s", info.out);
    ck_assert_msg(estimated == planned && estimated > 0, "--kv %s: the estimate says %.1f MiB, the placement %.1f MiB",
                  f32 ? "f32" : "f16", estimated, planned);
    sessions[f32] = planned;
    test_command_free(&info);
  }
  ck_assert_msg(sessions[1] > sessions[0] + 2.0, "f16 session %.1f MiB, f32 %.1f MiB", sessions[0], sessions[1]);

  test_command bad = test_run_clttt(scratch, "logits -m '%s' --tokens 1,2 --devices %s --split 1,1", scratch, pair);
  ck_assert_int_eq(bad.exit_code, 1);
  ck_assert_msg(strstr(bad.err, "cover every layer"), "stderr: %s", bad.err);
  test_command_free(&bad);
  test_command malformed = test_run_clttt(scratch, "logits -m '%s' --tokens 1,2 --devices %s --split 3", scratch, pair);
  ck_assert_int_ne(malformed.exit_code, 0);
  ck_assert_msg(strstr(malformed.err, "1 layer counts for the 2 devices"), "stderr: %s", malformed.err);
  test_command_free(&malformed);
  test_remove_directory(scratch);
}
END_TEST

#ifdef CLTTT_HAVE_MPI
/* 'mpirun -np 2 clttt logits' (built --with-mpi): rank 0 runs the first
 * layers and owns the output, rank 1 the rest, activations by MPI; the
 * logits equal the single-process run, fed token by token, for a Qwen3 and
 * a LLaMA TTT model (both with the second rank starting at a TTT layer;
 * the LLaMA one with input embeddings crossing). */
START_TEST(test_mpi_pipeline) {
  static const char *fixtures[] = {"ttt-proj-hidden", "ttt-llama-embed"};
  static const char *splits[] = {"2,1", "1,1"};
  const char *build = getenv("CLTTT_BUILD_DIR");
  ck_assert_ptr_nonnull(build);
  int count = 0;
  ck_assert_int_eq(clttt_list_devices(NULL, 0, &count), CLTTT_SUCCESS);
  for (int f = 0; f < 2; f++) {
    char scratch[512];
    test_make_temporary_directory(scratch, sizeof scratch);
    const fixture_spec *spec = fixture_find(fixtures[f]);
    ck_assert_int_eq(fixture_write(spec, scratch), CLTTT_SUCCESS);
    static const char tokens[] = "5,17,3,99,42,7,7,1,250,31,64,2,8,19,23,200,11,13,17,19,40,41,42,43,44,45,46,47,48,49,50,51,52,53";
    test_command single = test_run_clttt(scratch, "logits -m '%s' --tokens %s --ttt on --pieces 1 --device 0 --out '%s/single.bin'",
                                         scratch, tokens, scratch);
    ck_assert_msg(single.exit_code == 0, "single: %s", single.err);
    /* Leak checking off in the ranks only: Open MPI unloads its plugins
     * (PMIx, hwloc, its MCA components) before exit, and their allocations
     * then belong to no module a suppression could name. Memory errors are
     * still reported. */
    char command[4096];
    snprintf(command, sizeof command,
             "ASAN_OPTIONS=detect_leaks=0 %s --allow-run-as-root --oversubscribe -np 2 '%s/clttt' logits -m '%s' --tokens %s --ttt on --pieces 1 "
             "--devices %s --split %s --out '%s/pipeline.bin' > '%s/mpirun.log' 2>&1",
             CLTTT_MPIRUN, build, scratch, tokens, count >= 2 ? "0,1" : "0,0", splits[f], scratch, scratch);
    int status = system(command);
    char path[600];
    snprintf(path, sizeof path, "%s/mpirun.log", scratch);
    char *log = test_read_file(path, NULL);
    ck_assert_msg(status == 0, "%s: mpirun exited %d: %s", fixtures[f], status, log ? log : "");
    free(log);
    size_t single_size = 0, pipeline_size = 0;
    snprintf(path, sizeof path, "%s/single.bin", scratch);
    char *expected = test_read_file(path, &single_size);
    snprintf(path, sizeof path, "%s/pipeline.bin", scratch);
    char *got = test_read_file(path, &pipeline_size);
    ck_assert_uint_eq(single_size, 34 * (size_t)spec->config.vocab_size * sizeof(float));
    ck_assert_uint_eq(pipeline_size, single_size);
    /* The same kernels on the same kind of device: the very same bits;
     * else fp32 rounding of other sums, as in the in-process split. */
    clttt_device *pair[2];
    open_pair(pair);
    const size_t floats = single_size / sizeof(float);
    const double tolerance = same_kind(pair[0], pair[1]) ? 0.0 : 1e-5 * test_max_abs((const float *)expected, floats);
    clttt_device_close(pair[0]);
    clttt_device_close(pair[1]);
    const double difference = test_max_abs_difference((const float *)expected, (const float *)got, floats);
    ck_assert_msg(difference <= tolerance, "%s: the pipeline's logits differ by %g", fixtures[f], difference);
    free(expected);
    free(got);
    test_command_free(&single);
    test_remove_directory(scratch);
  }
}
END_TEST
#endif

/* With PoCL alone, POCL_DEVICES gave two devices: the split really crosses devices. */
START_TEST(test_split_two_pocl_devices) {
  clttt_device_info infos[8];
  int count = 0;
  ck_assert_int_eq(clttt_list_devices(infos, 8, &count), CLTTT_SUCCESS);
  int pocl = 0;
  for (int i = 0; i < count && i < 8; i++)
    pocl += strstr(infos[i].platform, "Portable Computing Language") != NULL;
  if (pocl == count)
    ck_assert_msg(count >= 2, "POCL_DEVICES=\"pthread pthread\" gave %d device(s)", count);
}
END_TEST

int main(void) {
  /* Before the first OpenCL call, which reads it once. An explicit value
   * from the environment wins. */
  setenv("POCL_DEVICES", "pthread pthread", 0);
  Suite *suite = suite_create("split");
  TCase *tc = tcase_create("split");
  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, test_split_two_pocl_devices);
  tcase_add_loop_test(tc, test_split_equals_single_device, 0, (int)(sizeof cases / sizeof cases[0]));
  tcase_add_test(tc, test_split_session_files);
  tcase_add_test(tc, test_split_bad_input);
  tcase_add_test(tc, test_split_plan);
  tcase_add_test(tc, test_split_commands);
#ifdef CLTTT_HAVE_MPI
  tcase_add_test(tc, test_mpi_pipeline);
#endif
  tcase_add_loop_test(tc, test_slices_chain_to_the_whole_model, 0, (int)(sizeof slice_cases / sizeof slice_cases[0]));
  suite_add_tcase(suite, tc);
  SRunner *runner = srunner_create(suite);
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
