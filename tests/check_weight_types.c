/* Weight element types on the device (clttt_model_params.weights): bf16 and
 * fp16 matrices read by our kernels with fp32 arithmetic, against the fp32
 * path of the same checkpoint and against checkpoints written in those
 * types by the fixture writer (an independent rounding routine); the memory
 * the cost model predicts for each type; the errors.
 *
 * Tolerances. A checkpoint stored in bf16 or fp16 holds values that fp32
 * represents exactly, so its logits with 16-bit weights on the device and
 * with fp32 weights differ only where the two paths sum in another order
 * (the tied LM head: our packed GEMM against the fp32 path's GEMV or
 * CLBlast; the GPU-shaped variant's k tiles): fp32 rounding of sums of at
 * most a few hundred products, so 2e-5 of the largest logit. Converting at
 * load gives the very bytes a checkpoint written in that type holds, so
 * those logits are compared bit for bit. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "packed_gemm.h"
#include "runtime.h"
#include "test_model.h"
#include "test_util.h"
#include "weights.h"

#define TOKENS 40

static void tokens_of(int32_t *tokens, int n, int vocab) {
  for (int i = 0; i < n; i++)
    tokens[i] = (int32_t)((i * 37 + 11) % vocab);
}

/* Fixture `name` written into a fresh directory, its tensors stored as
 * `dtype` ("F32", "BF16", "F16"; NULL: the fixture's own), its matrices as
 * `matrix_dtype` (NULL: the same). */
static void write_fixture_as(char *dir, size_t capacity, const char *name, const char *dtype,
                             const char *matrix_dtype) {
  const fixture_spec *spec = fixture_find(name);
  ck_assert_msg(spec != NULL, "no fixture %s", name);
  fixture_spec copy = *spec;
  if (dtype)
    copy.dtype = dtype;
  copy.matrix_dtype = matrix_dtype;
  test_make_temporary_directory(dir, capacity);
  ck_assert_int_eq(fixture_write(&copy, dir), CLTTT_SUCCESS);
}

static void write_fixture(char *dir, size_t capacity, const char *name, const char *dtype) {
  write_fixture_as(dir, capacity, name, dtype, NULL);
}

static clttt_model *load(clttt_device *device, const char *dir, clttt_weight_type type) {
  clttt_model_params params = clttt_model_default_params();
  params.weights = type;
  clttt_model *model = NULL;
  int status = clttt_model_load(&model, device, dir, &params);
  ck_assert_msg(status == CLTTT_SUCCESS, "loading %s with %s weights: %s: %s", dir, clttt_weight_type_name(type),
                clttt_status_name(status), clttt_last_error());
  return model;
}

/* Logits of TOKENS tokens with TTT as the checkpoint says, fed whole and
 * one token at a time (decode's one-row products). */
static void run_both_ways(clttt_model *model, float **whole, float **single) {
  int32_t tokens[TOKENS];
  tokens_of(tokens, TOKENS, clttt_model_get_config(model)->vocab_size);
  *whole = test_run(model, tokens, TOKENS, test_run_default);
  test_run_options one = test_run_default;
  one.piece = 1;
  *single = test_run(model, tokens, TOKENS, one);
}

/* Stored 16-bit checkpoints: their own type on the device gives the fp32
 * path's logits to fp32 rounding, TTT layers included (their fp32 fast
 * weights start from the widened W_down). */
static void check_stored_type_is_exact(const char *name, const char *dtype, clttt_weight_type expected) {
  char dir[512];
  write_fixture(dir, sizeof dir, name, dtype);
  clttt_device *device = test_open_device();
  clttt_weight_type stored = CLTTT_WEIGHTS_AUTO;
  ck_assert_int_eq(clttt_checkpoint_weight_type(dir, &stored), CLTTT_SUCCESS);
  ck_assert_int_eq(stored, expected);
  clttt_model *half = load(device, dir, CLTTT_WEIGHTS_AUTO);
  clttt_model *full = load(device, dir, CLTTT_WEIGHTS_F32);
  ck_assert_int_eq(clttt_model_weight_type(half), expected);
  ck_assert_int_eq(clttt_model_weight_type(full), CLTTT_WEIGHTS_F32);
  ck_assert_uint_lt(clttt_model_weight_bytes(half), clttt_model_weight_bytes(full));
  float *half_whole, *half_single, *full_whole, *full_single;
  run_both_ways(half, &half_whole, &half_single);
  run_both_ways(full, &full_whole, &full_single);
  const size_t count = (size_t)TOKENS * (size_t)clttt_model_get_config(full)->vocab_size;
  const double scale = test_max_abs(full_whole, count);
  ck_assert(scale > 0.1);
  double whole = test_max_abs_difference(half_whole, full_whole, count);
  double single = test_max_abs_difference(half_single, full_single, count);
  ck_assert_msg(whole <= 2e-5 * scale && single <= 2e-5 * scale,
                "%s as %s: 16-bit weights differ from fp32 by %g (whole) and %g (one token at a time), "
                "largest logit %g", name, dtype ? dtype : "stored", whole, single, scale);
  /* With TTT off a TTT layer's stored W_down is the product's weight
   * itself (packed when 16-bit, row-major fp32 otherwise). */
  if (clttt_model_get_config(full)->ttt_mode) {
    int32_t tokens[TOKENS];
    tokens_of(tokens, TOKENS, clttt_model_get_config(full)->vocab_size);
    test_run_options off = test_run_default;
    off.ttt = 0;
    float *half_off = test_run(half, tokens, TOKENS, off), *full_off = test_run(full, tokens, TOKENS, off);
    double difference = test_max_abs_difference(half_off, full_off, count);
    ck_assert_msg(difference <= 2e-5 * scale, "%s with TTT off: 16-bit weights differ from fp32 by %g", name,
                  difference);
    ck_assert(test_max_abs_difference(half_off, half_whole, count) > 1e-4); /* TTT on did something */
    free(half_off);
    free(full_off);
  }
  free(half_whole);
  free(half_single);
  free(full_whole);
  free(full_single);
  clttt_model_free(half);
  clttt_model_free(full);
  clttt_device_close(device);
  test_remove_directory(dir);
}

START_TEST(test_stored_bf16_and_fp16_run_exactly) {
  /* The fixtures' own: BF16 untied in two shards, F16 with biases. */
  check_stored_type_is_exact("qwen3-yarn", NULL, CLTTT_WEIGHTS_BF16);
  check_stored_type_is_exact("llama-bias", NULL, CLTTT_WEIGHTS_F16);
  /* Tied (one packed table for the gather and the head) and TTT layers. */
  check_stored_type_is_exact("qwen3-tied", "BF16", CLTTT_WEIGHTS_BF16);
  check_stored_type_is_exact("ttt-proj-hidden", "BF16", CLTTT_WEIGHTS_BF16);
  check_stored_type_is_exact("ttt-noproj-embed", "F16", CLTTT_WEIGHTS_F16);
  check_stored_type_is_exact("ttt-llama-embed", "BF16", CLTTT_WEIGHTS_BF16);
}
END_TEST

static char warnings[4096];

static void capture(clttt_log_level level, const char *message, void *context) {
  (void)level;
  (void)context;
  strncat(warnings, message, sizeof warnings - strlen(warnings) - 2);
  strcat(warnings, "\n");
}

/* An fp32 checkpoint converted at load equals the same checkpoint with its
 * matrices written in that type (its norms, biases, conv and projection
 * stay fp32 in both), bit for bit, and the conversion is announced. */
static void check_conversion(const char *name, const char *dtype, clttt_weight_type type) {
  char f32_dir[512], half_dir[512];
  write_fixture(f32_dir, sizeof f32_dir, name, "F32");
  write_fixture_as(half_dir, sizeof half_dir, name, "F32", dtype);
  clttt_device *device = test_open_device();
  warnings[0] = '\0';
  clttt_set_log_callback(capture, NULL);
  clttt_model *converted = load(device, f32_dir, type);
  clttt_set_log_callback(NULL, NULL);
  ck_assert_msg(strstr(warnings, "converted to") && strstr(warnings, clttt_weight_type_name(type)) &&
                    strstr(warnings, "logits will differ"),
                "no warning for the conversion: '%s'", warnings);
  clttt_weight_type stored_type = CLTTT_WEIGHTS_AUTO;
  ck_assert_int_eq(clttt_checkpoint_weight_type(half_dir, &stored_type), CLTTT_SUCCESS);
  ck_assert_int_eq(stored_type, type);
  warnings[0] = '\0';
  clttt_set_log_callback(capture, NULL);
  clttt_model *stored = load(device, half_dir, CLTTT_WEIGHTS_AUTO);
  clttt_set_log_callback(NULL, NULL);
  ck_assert_msg(warnings[0] == '\0', "loading as stored warned: '%s'", warnings);
  ck_assert_uint_eq(clttt_model_weight_bytes(converted), clttt_model_weight_bytes(stored));
  float *a_whole, *a_single, *b_whole, *b_single;
  run_both_ways(converted, &a_whole, &a_single);
  run_both_ways(stored, &b_whole, &b_single);
  const size_t count = (size_t)TOKENS * (size_t)clttt_model_get_config(stored)->vocab_size;
  ck_assert_msg(memcmp(a_whole, b_whole, count * sizeof(float)) == 0 &&
                    memcmp(a_single, b_single, count * sizeof(float)) == 0,
                "%s converted to %s at load differs from the %s checkpoint by %g", name, dtype, dtype,
                test_max_abs_difference(a_whole, b_whole, count));
  /* And the rounding moved the logits (so the comparison above means something). */
  clttt_model *full = load(device, f32_dir, CLTTT_WEIGHTS_AUTO);
  float *f_whole, *f_single;
  run_both_ways(full, &f_whole, &f_single);
  ck_assert(test_max_abs_difference(a_whole, f_whole, count) > 1e-4);
  free(a_whole);
  free(a_single);
  free(b_whole);
  free(b_single);
  free(f_whole);
  free(f_single);
  clttt_model_free(converted);
  clttt_model_free(stored);
  clttt_model_free(full);
  clttt_device_close(device);
  test_remove_directory(f32_dir);
  test_remove_directory(half_dir);
}

START_TEST(test_conversion_at_load_equals_the_converted_checkpoint) {
  check_conversion("ttt-proj-hidden", "BF16", CLTTT_WEIGHTS_BF16);
  check_conversion("llama3-scaled", "F16", CLTTT_WEIGHTS_F16);
  check_conversion("ttt-llama-embed", "F16", CLTTT_WEIGHTS_F16);
}
END_TEST

/* What a GPU does with 16-bit weights (its fp32 products stay CLBlast's):
 * the GPU variant of our GEMM, its panels of 24 with k padded to tiles of
 * 24 (ragged for every k of the fixture), the gather reading that layout. */
START_TEST(test_gpu_layout_runs_bf16_weights) {
  char dir[512];
  write_fixture(dir, sizeof dir, "ttt-llama-embed", "BF16");
  clttt_device *device = test_open_device();
  clttt_model *full = load(device, dir, CLTTT_WEIGHTS_F32);
  float *full_whole, *full_single;
  run_both_ways(full, &full_whole, &full_single);
  clttt_model_free(full);
  device->tuning.gemm_packed = 0;
  device->tuning.update_own = 0;
  device->tuning.gemm = (packed_gemm_params){.variant = PACKED_GEMM_GPU, .nr = 24, .mr = 8, .row_block = 128,
                                             .local_k = 0, .tile_m = 12, .tile_k = 24, .item_m = 3, .item_n = 2};
  clttt_model *half = load(device, dir, CLTTT_WEIGHTS_AUTO);
  ck_assert_int_eq(half->embedding.layout.variant, PACKED_GEMM_GPU);
  ck_assert_uint_eq(half->embedding.layout.k_padded, 72);
  ck_assert_uint_eq(clttt_model_weight_bytes(half),
                    clttt_estimate_weight_bytes(clttt_model_get_config(half), CLTTT_WEIGHTS_BF16, device));
  float *half_whole, *half_single;
  run_both_ways(half, &half_whole, &half_single);
  const size_t count = (size_t)TOKENS * (size_t)clttt_model_get_config(half)->vocab_size;
  const double scale = test_max_abs(full_whole, count);
  double whole = test_max_abs_difference(half_whole, full_whole, count);
  double single = test_max_abs_difference(half_single, full_single, count);
  ck_assert_msg(whole <= 2e-5 * scale && single <= 2e-5 * scale, "GPU layout: %g and %g of %g", whole, single, scale);
  free(full_whole);
  free(full_single);
  free(half_whole);
  free(half_single);
  clttt_model_free(half);
  clttt_device_close(device);
  test_remove_directory(dir);
}
END_TEST

/* A TTT layer's fp32 W_down in both layouts: packed like every other
 * weight where the device packs fp32 (our GEMM then runs it with TTT off,
 * and on a CPU the fast weight is a copy of its panels, applied and updated
 * there), and row-major where it does not (CLBlast runs it, and the fast
 * weight is a row-major copy, packed per batch for the apply). Both must
 * give the same logits with TTT on and off, whole and token by token. They
 * are two fp32 GEMM implementations summing in different orders (~1e-6 of
 * the logits' scale apart per product), so 2e-5 of that scale, as for the
 * GPU layout above; an unpacking that misplaced W_down's elements would be
 * off by O(1). */
START_TEST(test_ttt_down_projection_in_either_layout) {
  char dir[512];
  write_fixture(dir, sizeof dir, "ttt-llama-embed", "F32");
  clttt_device *device = test_open_device();
  device->tuning.gemm_packed = 1; /* whatever this device's default, both layouts run */
  clttt_model *packed = load(device, dir, CLTTT_WEIGHTS_F32);
  device->tuning.gemm_packed = 0;
  clttt_model *row_major = load(device, dir, CLTTT_WEIGHTS_F32);
  int ttt_layers = 0;
  for (int i = 0; i < clttt_model_get_config(packed)->num_hidden_layers; i++) {
    if (!packed->layers[i].is_ttt)
      continue;
    ttt_layers++;
    ck_assert_int_eq(packed->layers[i].down.packed, 1);
    ck_assert_int_eq(row_major->layers[i].down.packed, 0);
  }
  ck_assert_int_gt(ttt_layers, 0);
  const size_t count = (size_t)TOKENS * (size_t)clttt_model_get_config(packed)->vocab_size;
  for (int ttt = 0; ttt <= 1; ttt++) {
    int32_t tokens[TOKENS];
    tokens_of(tokens, TOKENS, clttt_model_get_config(packed)->vocab_size);
    test_run_options options = test_run_default;
    options.ttt = ttt;
    for (int piece = 0; piece <= 1; piece++) {
      options.piece = piece;
      float *a = test_run(packed, tokens, TOKENS, options), *b = test_run(row_major, tokens, TOKENS, options);
      const double scale = test_max_abs(b, count), difference = test_max_abs_difference(a, b, count);
      ck_assert(scale > 0.1);
      ck_assert_msg(difference <= 2e-5 * scale, "TTT %s, pieces of %d: packed against row-major W_down %g of %g",
                    ttt ? "on" : "off", piece, difference, scale);
      free(a);
      free(b);
    }
  }
  clttt_model_free(packed);
  clttt_model_free(row_major);
  clttt_device_close(device);
  test_remove_directory(dir);
}
END_TEST

/* The cost model equals the allocation for every type, and its unpadded
 * figure halves exactly the matrices' share. */
START_TEST(test_weight_bytes_match_the_cost_model) {
  static const char *const names[] = {"qwen3-tied", "qwen3-yarn", "llama-bias", "ttt-proj-hidden", "ttt-llama-embed"};
  static const clttt_weight_type types[] = {CLTTT_WEIGHTS_F32, CLTTT_WEIGHTS_BF16, CLTTT_WEIGHTS_F16};
  clttt_device *device = test_open_device();
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char dir[512];
    write_fixture(dir, sizeof dir, names[i], NULL);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
      uint64_t before = 0, after = 0;
      clttt_device_memory(device, &before, NULL, 0);
      clttt_model *model = load(device, dir, types[t]);
      clttt_device_memory(device, &after, NULL, 0);
      const clttt_config *config = clttt_model_get_config(model);
      ck_assert_uint_eq(clttt_model_weight_bytes(model), clttt_estimate_weight_bytes(config, types[t], device));
      ck_assert_uint_eq(after - before, clttt_model_weight_bytes(model));
      /* Matrices counted independently of the library: what halves. */
      const uint64_t d = (uint64_t)config->hidden_size, f = (uint64_t)config->intermediate_size;
      const uint64_t q = (uint64_t)config->num_attention_heads * (uint64_t)config->head_dim;
      const uint64_t kv = (uint64_t)config->num_key_value_heads * (uint64_t)config->head_dim;
      const uint64_t matrices = (uint64_t)config->num_hidden_layers * ((q + 2 * kv) * d + d * q + 3 * d * f) +
                                (uint64_t)config->vocab_size * d * (config->tie_word_embeddings ? 1 : 2);
      ck_assert_uint_eq(clttt_estimate_weight_bytes(config, CLTTT_WEIGHTS_F32, NULL) -
                            clttt_estimate_weight_bytes(config, types[t] == CLTTT_WEIGHTS_F32 ? CLTTT_WEIGHTS_BF16
                                                                                               : types[t], NULL),
                        2 * matrices);
      clttt_model_free(model);
    }
    test_remove_directory(dir);
  }
  clttt_device_close(device);
}
END_TEST

/* The Qwen3-8B-TTT configuration: bf16 weights and an f16 KV cache
 * at 32k tokens fit a 24 GiB card; fp32 everything does not fit 40 GiB. */
START_TEST(test_8b_configuration_fits_24_gib_in_bf16) {
  clttt_config config;
  ck_assert_int_eq(clttt_synthetic_config(&config, 4096, 12288, 36, 32, 8, 128, 151936, 131072, 6, 1024, 1e-3f),
                   CLTTT_SUCCESS);
  config.tie_word_embeddings = 0;
  ck_assert_int_eq(config.ttt_layer_count, 6); /* 0, 6, ..., 30 */
  clttt_session_params params = clttt_session_default_params();
  params.context = 32768;
  params.kv_type = CLTTT_KV_F16;
  const double gib = 1024.0 * 1024.0 * 1024.0;
  double bf16 = (double)(clttt_estimate_weight_bytes(&config, CLTTT_WEIGHTS_BF16, NULL) +
                         clttt_estimate_session_bytes(&config, &params));
  ck_assert_msg(bf16 < 24.0 * gib, "bf16 + f16 KV at 32k: %.2f GiB", bf16 / gib);
  params.kv_type = CLTTT_KV_F32;
  double f32 = (double)(clttt_estimate_weight_bytes(&config, CLTTT_WEIGHTS_F32, NULL) +
                        clttt_estimate_session_bytes(&config, &params));
  ck_assert_msg(f32 > 40.0 * gib, "fp32 at 32k: %.2f GiB", f32 / gib);
  clttt_config_free(&config);
}
END_TEST

START_TEST(test_bad_weight_choices_are_named_errors) {
  clttt_weight_type type = CLTTT_WEIGHTS_AUTO;
  ck_assert_int_eq(clttt_weight_type_parse("bf16", &type), CLTTT_SUCCESS);
  ck_assert_int_eq(type, CLTTT_WEIGHTS_BF16);
  ck_assert_int_eq(clttt_weight_type_parse("fp8", &type), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(clttt_last_error(), "fp8"));

  clttt_device *device = test_open_device();
  clttt_config config;
  ck_assert_int_eq(clttt_synthetic_config(&config, 64, 128, 2, 4, 2, 16, 256, 64, 0, 16, 1e-3f), CLTTT_SUCCESS);
  clttt_model_params params = clttt_model_default_params();
  params.weights = (clttt_weight_type)9;
  clttt_model *model = NULL;
  ck_assert_int_eq(clttt_model_synthetic(&model, device, &config, &params, 1), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_ptr_null(model);
  ck_assert_ptr_nonnull(strstr(clttt_last_error(), "weight type 9"));

  /* Weights larger than the device: refused before anything is allocated,
   * naming the type, what they need and what the device has. */
  clttt_config_free(&config);
  ck_assert_int_eq(clttt_synthetic_config(&config, 8192, 65536, 64, 64, 8, 128, 262144, 64, 0, 16, 1e-3f),
                   CLTTT_SUCCESS);
  uint64_t before = 0, peak = 0;
  clttt_device_memory(device, &before, NULL, 1);
  params.weights = CLTTT_WEIGHTS_BF16;
  int status = clttt_model_synthetic(&model, device, &config, &params, 1);
  ck_assert_int_eq(status, CL_MEM_OBJECT_ALLOCATION_FAILURE);
  ck_assert_ptr_null(model);
  const char *message = clttt_last_error();
  ck_assert_msg(strstr(message, "bf16") && strstr(message, "need") && strstr(message, clttt_device_get_info(device)->name),
                "%s", message);
  clttt_device_memory(device, NULL, &peak, 0);
  ck_assert_uint_eq(peak, before);
  clttt_config_free(&config);

  /* A weight larger than the device's largest allocation: the same, before
   * the first buffer (the embedding, 256 x 64 floats, is the largest). */
  ck_assert_int_eq(clttt_synthetic_config(&config, 64, 128, 2, 4, 2, 16, 256, 64, 0, 16, 1e-3f), CLTTT_SUCCESS);
  const uint64_t max_allocation = device->info.max_allocation;
  device->info.max_allocation = 32768;
  params.weights = CLTTT_WEIGHTS_F32;
  clttt_device_memory(device, &before, NULL, 1);
  status = clttt_model_synthetic(&model, device, &config, &params, 1);
  device->info.max_allocation = max_allocation;
  ck_assert_int_eq(status, CL_MEM_OBJECT_ALLOCATION_FAILURE);
  ck_assert_msg(strstr(clttt_last_error(), "largest weight") && strstr(clttt_last_error(), "0.1 MiB"), "%s",
                clttt_last_error());
  clttt_device_memory(device, NULL, &peak, 0);
  ck_assert_uint_eq(peak, before);
  clttt_config_free(&config);
  clttt_device_close(device);

  char dir[512];
  test_make_temporary_directory(dir, sizeof dir);
  ck_assert_int_eq(clttt_checkpoint_weight_type(dir, &type), CLTTT_ERROR_IO);
  test_remove_directory(dir);
}
END_TEST

static Suite *weight_types_suite(void) {
  Suite *suite = suite_create("weight_types");
  TCase *exact = tcase_create("exact");
  tcase_set_timeout(exact, 600);
  tcase_add_test(exact, test_stored_bf16_and_fp16_run_exactly);
  tcase_add_test(exact, test_conversion_at_load_equals_the_converted_checkpoint);
  tcase_add_test(exact, test_gpu_layout_runs_bf16_weights);
  tcase_add_test(exact, test_ttt_down_projection_in_either_layout);
  suite_add_tcase(suite, exact);
  TCase *memory = tcase_create("memory");
  tcase_set_timeout(memory, 600);
  tcase_add_test(memory, test_weight_bytes_match_the_cost_model);
  tcase_add_test(memory, test_8b_configuration_fits_24_gib_in_bf16);
  tcase_add_test(memory, test_bad_weight_choices_are_named_errors);
  suite_add_tcase(suite, memory);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(weight_types_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
