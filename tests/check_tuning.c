/* Per-device kernel parameters: the tuning cache (what device open accepts
 * and what it ignores), its atomic, merging writer, the tuner, and that any
 * valid parameter set computes the same model. */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autotune.h"
#include "error.h"
#include "ops.h"
#include "packed_gemm.h"
#include "runtime.h"
#include "test_model.h"
#include "test_util.h"
#include "ttt.h"
#include "tuning.h"

static char directory[512];
static char cache_path[700];

static void setup(void) {
  test_make_temporary_directory(directory, sizeof directory);
  snprintf(cache_path, sizeof cache_path, "%s/tuning.json", directory);
  setenv("CLTTT_TUNING_FILE", cache_path, 1);
}

static void teardown(void) {
  unsetenv("CLTTT_TUNING_FILE");
  test_remove_directory(directory);
}

/* What describes the device test_open_device picks (the first GPU, else device 0). */
static clttt_device_info default_device_info(void) {
  clttt_device *device = test_open_device();
  clttt_device_info info = device->info;
  clttt_device_close(device);
  return info;
}

/* A parameter set unlike every vendor's defaults, valid on any device that
 * allows groups of 64: odd conv rows exercise partial tails. */
static tuning_params unusual_params(const clttt_device_info *info) {
  tuning_params params;
  tuning_defaults(info, &params);
  params.rmsnorm_work_group_size = 16;
  params.attention_block_q = 8;
  params.attention_block_k = 16;
  params.rope_work_group_size = 8;
  params.elementwise_work_group_size = 32;
  params.vector_width = params.vector_width == 8 ? 2 : 8;
  params.conv_rows = 3;
  /* The other decode GEMV pattern, and the GEMM attention path for any batch
   * of two or more queries, so both paths of each family meet the fixtures. */
  params.gemv_row_per_item = !params.gemv_row_per_item;
  params.gemv_work_group_size = 8;
  params.attention_gemm_min_queries = params.attention_gemm_min_queries == 2 ? 3 : 2;
  params.softmax_work_group_size = params.softmax_work_group_size == 16 ? 4 : 16;
  /* The other decode attention layout; another tile of the update kernel. */
  params.attention_decode_rows = !params.attention_decode_rows;
  params.update.nr = params.update.nr == 32 ? 64 : 32;
  params.update.mr = params.update.mr == 4 ? 5 : 4;
  return params;
}

static json_t *entry_json(const char *platform, const char *device, const char *driver, json_t *parameters) {
  return json_pack("{s:s, s:s, s:s, s:o}", "platform", platform, "device", device, "driver", driver,
                   "parameters", parameters);
}

static json_t *parameters_json(const tuning_params *params) {
  json_t *object = json_object();
  for (int i = 0; i < tuning_parameter_count; i++)
    json_object_set_new(object, tuning_parameters[i].name,
                        json_integer(tuning_get(params, &tuning_parameters[i])));
  return object;
}

static void write_cache(const char *format, int version, json_t *entries) {
  json_t *root = json_pack("{s:s, s:i, s:o}", "format", format, "version", version, "entries", entries);
  ck_assert_ptr_nonnull(root);
  ck_assert_int_eq(json_dump_file(root, cache_path, JSON_INDENT(2)), 0);
  json_decref(root);
}

/* Opens the default device and asserts it runs the built-in defaults. */
static void assert_device_uses_defaults(const char *what) {
  clttt_device *device = test_open_device();
  tuning_params defaults;
  tuning_defaults(&device->info, &defaults);
  ck_assert_msg(tuning_equal(&device->tuning, &defaults), "%s: the device does not use the defaults", what);
  ck_assert_str_eq(device->tuning_source, "built-in defaults");
  clttt_device_close(device);
}

START_TEST(test_missing_file_gives_defaults) {
  assert_device_uses_defaults("no cache file");
  clttt_device_info info = default_device_info();
  tuning_params params;
  tuning_defaults(&info, &params);
  int found = 1;
  ck_assert_int_eq(tuning_cache_lookup(cache_path, &info, &params, &found), CLTTT_SUCCESS);
  ck_assert_int_eq(found, 0);
}
END_TEST

START_TEST(test_corrupt_file_ignored) {
  test_write_text(directory, "tuning.json", "{\"format\": \"clttt-tuning\", \"version\": 1, \"entries\": [");
  clttt_device_info info = default_device_info();
  tuning_params params;
  tuning_defaults(&info, &params);
  int found = 0;
  ck_assert_int_eq(tuning_cache_lookup(cache_path, &info, &params, &found), CLTTT_ERROR_BAD_TUNING_FILE);
  ck_assert_msg(strstr(clttt_last_error(), cache_path) != NULL, "%s", clttt_last_error());
  assert_device_uses_defaults("corrupt JSON");
  test_write_text(directory, "tuning.json", "");
  assert_device_uses_defaults("empty file");
  test_write_text(directory, "tuning.json", "[1, 2, 3]");
  assert_device_uses_defaults("JSON that is not an object");
}
END_TEST

START_TEST(test_foreign_file_ignored) {
  clttt_device_info info = default_device_info();
  tuning_params tuned = unusual_params(&info);
  json_t *entries = json_array();
  json_array_append_new(entries, entry_json(info.platform, info.name, info.driver_version, parameters_json(&tuned)));
  write_cache("some-other-tool", 1, json_incref(entries));
  assert_device_uses_defaults("wrong format");
  write_cache(TUNING_FILE_FORMAT, TUNING_FILE_VERSION + 1, json_incref(entries));
  assert_device_uses_defaults("wrong version");
  json_decref(entries);

  /* Our format, but entries only for other devices, or for this device under
   * another driver version (a driver update invalidates measurements). */
  entries = json_array();
  json_array_append_new(entries, entry_json(info.platform, "Some Other Device", info.driver_version,
                                            parameters_json(&tuned)));
  json_array_append_new(entries, entry_json("Other Platform", info.name, info.driver_version, parameters_json(&tuned)));
  json_array_append_new(entries, entry_json(info.platform, info.name, "0.0-other-driver", parameters_json(&tuned)));
  write_cache(TUNING_FILE_FORMAT, TUNING_FILE_VERSION, entries);
  tuning_params params;
  tuning_defaults(&info, &params);
  int found = 1;
  ck_assert_int_eq(tuning_cache_lookup(cache_path, &info, &params, &found), CLTTT_SUCCESS);
  ck_assert_int_eq(found, 0);
  assert_device_uses_defaults("entries for other devices");
}
END_TEST

START_TEST(test_bad_values_ignored) {
  clttt_device_info info = default_device_info();
  const tuning_params good = unusual_params(&info);
  struct {
    const char *name;
    json_t *value;
  } bad[] = {
      {"RMSNORM_WGS", json_integer(48)},                                             /* not a power of two */
      {"ELEMENTWISE_WGS", json_integer((json_int_t)info.max_work_group_size * 2)}, /* over the device's largest */
      {"ROPE_WGS", json_integer(0)},
      {"ATTENTION_BLOCK_Q", json_integer(-16)},
      {"VECTOR_WIDTH", json_integer(3)},                                             /* no float3 loads */
      {"ATTENTION_BLOCK_K", json_integer(100000)},
      {"TTT_CONV_ROWS", json_string("four")},
      {"RMSNORM_WGS", json_real(64.5)},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    json_t *parameters = parameters_json(&good);
    json_object_set_new(parameters, bad[i].name, bad[i].value);
    json_t *entries = json_array();
    json_array_append_new(entries, entry_json(info.platform, info.name, info.driver_version, parameters));
    write_cache(TUNING_FILE_FORMAT, TUNING_FILE_VERSION, entries);
    tuning_params params;
    tuning_defaults(&info, &params);
    int found = 0;
    ck_assert_int_eq(tuning_cache_lookup(cache_path, &info, &params, &found), CLTTT_ERROR_BAD_TUNING_FILE);
    ck_assert_msg(strstr(clttt_last_error(), bad[i].name) != NULL, "case %zu: %s", i, clttt_last_error());
    assert_device_uses_defaults(bad[i].name);
  }
  /* An entry without a parameters object. */
  json_t *entries = json_array();
  json_array_append_new(entries, json_pack("{s:s, s:s, s:s}", "platform", info.platform, "device", info.name,
                                           "driver", info.driver_version));
  write_cache(TUNING_FILE_FORMAT, TUNING_FILE_VERSION, entries);
  assert_device_uses_defaults("no parameters");
}
END_TEST

START_TEST(test_valid_entry_applied) {
  clttt_device_info info = default_device_info();
  const tuning_params tuned = unusual_params(&info);
  json_t *entries = json_array();
  tuning_params other = tuned;
  other.rmsnorm_work_group_size = 32;
  json_array_append_new(entries, entry_json("Other Platform", "Other Device", "1.0", parameters_json(&other)));
  json_array_append_new(entries, entry_json(info.platform, info.name, info.driver_version, parameters_json(&tuned)));
  write_cache(TUNING_FILE_FORMAT, TUNING_FILE_VERSION, entries);
  clttt_device *device = test_open_device();
  ck_assert_msg(tuning_equal(&device->tuning, &tuned), "the cache entry was not applied");
  ck_assert_msg(strstr(device->tuning_source, cache_path) != NULL, "source: %s", device->tuning_source);
  /* The kernels build with it. */
  kernel_set kernels;
  ck_assert_msg(kernel_set_create(&kernels, device, &device->tuning, 128, 0) == CLTTT_SUCCESS, "%s",
                clttt_last_error());
  kernel_set_release(&kernels);
  clttt_device_close(device);

  /* An entry may leave parameters out: those keep the defaults. Zero is a
   * value, not a missing one, where the parameter allows it. */
  json_t *parameters = json_pack("{s:i, s:i}", "TTT_CONV_ROWS", 5, "ATTENTION_GEMM_MIN_QUERIES", 0);
  entries = json_array();
  json_array_append_new(entries, entry_json(info.platform, info.name, info.driver_version, parameters));
  write_cache(TUNING_FILE_FORMAT, TUNING_FILE_VERSION, entries);
  device = test_open_device();
  tuning_params expected;
  tuning_defaults(&info, &expected);
  expected.conv_rows = 5;
  expected.attention_gemm_min_queries = 0;
  ck_assert(tuning_equal(&device->tuning, &expected));
  clttt_device_close(device);
}
END_TEST

static int count_directory_entries(const char *path) {
  DIR *dir = opendir(path);
  ck_assert_ptr_nonnull(dir);
  int count = 0;
  struct dirent *entry;
  while ((entry = readdir(dir)) != NULL)
    if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
      count++;
  closedir(dir);
  return count;
}

START_TEST(test_store_is_atomic_and_merges) {
  clttt_device_info info = default_device_info();
  tuning_params first = unusual_params(&info), second = first;
  second.rope_work_group_size = 32;

  /* Another device's entry and an old one of this device. */
  json_t *entries = json_array();
  json_array_append_new(entries, entry_json("Other Platform", "Other Device", "1.0", json_pack("{s:i}", "RMSNORM_WGS", 256)));
  json_array_append_new(entries, entry_json(info.platform, info.name, info.driver_version, parameters_json(&first)));
  write_cache(TUNING_FILE_FORMAT, TUNING_FILE_VERSION, entries);

  ck_assert_int_eq(tuning_cache_store(cache_path, &info, &second), CLTTT_SUCCESS);
  /* Nothing but the file itself is left behind: no temporary files. */
  ck_assert_int_eq(count_directory_entries(directory), 1);
  json_error_t error;
  json_t *root = json_load_file(cache_path, 0, &error);
  ck_assert_msg(root != NULL, "%s", error.text);
  ck_assert_str_eq(json_string_value(json_object_get(root, "format")), "clttt-tuning");
  ck_assert_int_eq(json_integer_value(json_object_get(root, "version")), 1);
  json_t *stored = json_object_get(root, "entries");
  ck_assert_int_eq((int)json_array_size(stored), 2);
  int others = 0, mine = 0;
  size_t index;
  json_t *entry;
  json_array_foreach(stored, index, entry) {
    const char *name = json_string_value(json_object_get(entry, "device"));
    if (strcmp(name, "Other Device") == 0) {
      others++;
      ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(entry, "parameters"), "RMSNORM_WGS")), 256);
    } else if (strcmp(name, info.name) == 0) {
      mine++;
      ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(entry, "parameters"), "ROPE_WGS")), 32);
    }
  }
  json_decref(root);
  ck_assert_int_eq(others, 1);
  ck_assert_int_eq(mine, 1);
  clttt_device *device = test_open_device();
  ck_assert(tuning_equal(&device->tuning, &second));
  clttt_device_close(device);

  /* A corrupt file is replaced; a missing directory is created. */
  test_write_text(directory, "tuning.json", "garbage");
  ck_assert_int_eq(tuning_cache_store(cache_path, &info, &first), CLTTT_SUCCESS);
  device = test_open_device();
  ck_assert(tuning_equal(&device->tuning, &first));
  clttt_device_close(device);
  char nested[800];
  snprintf(nested, sizeof nested, "%s/a/b/tuning.json", directory);
  ck_assert_int_eq(tuning_cache_store(nested, &info, &first), CLTTT_SUCCESS);
  tuning_params params;
  tuning_defaults(&info, &params);
  int found = 0;
  ck_assert_int_eq(tuning_cache_lookup(nested, &info, &params, &found), CLTTT_SUCCESS);
  ck_assert_int_eq(found, 1);
  ck_assert(tuning_equal(&params, &first));

  /* Values the device cannot run are refused, and the file is left as it was. */
  tuning_params bad = first;
  bad.rmsnorm_work_group_size = 48;
  ck_assert_int_eq(tuning_cache_store(cache_path, &info, &bad), CLTTT_ERROR_INVALID_ARGUMENT);
  device = test_open_device();
  ck_assert(tuning_equal(&device->tuning, &first));
  clttt_device_close(device);
}
END_TEST

/* Quick options at tiny, odd shapes, one repetition, with this hidden size
 * (slices of 1024 over k 1100: one ragged; attention_prefetch's batch after
 * 38 cached keys, so its reference must start there). */
static autotune_options tiny_shape_options(int hidden) {
  autotune_options options;
  autotune_options_init(&options, 1);
  options.shape = (autotune_shape){.tokens = 37, .attention_tokens = 45, .attention_context = 83, .hidden = hidden, .intermediate = 99,
                                   .heads = 4, .kv_heads = 2, .head_dim = 16, .chunk = 21,
                                   .slices_n = 40, .slices_k = 1100};
  options.repetitions = 1;
  return options;
}

/* The library's INFO lines during a search, joined. */
static char notes[4096];

static void collect_note(clttt_log_level level, const char *message, void *user_data) {
  (void)user_data;
  if (level == CLTTT_LOG_INFO && strlen(notes) + strlen(message) + 2 < sizeof notes) {
    strcat(notes, message);
    strcat(notes, "\n");
  }
}

/* Where a session keeps the fast weight in the GEMM's panels (the CPU
 * defaults at hidden 64), the tuner times and checks the update the way a
 * session runs it: update_choice's candidates go into the panels and must
 * agree with the host product, read back out of the panels; the row-major
 * kernel's CPU tiles (update, update_blocks) are not searched. */
START_TEST(test_tuner_update_into_panels) {
  clttt_device *device = test_open_device();
  autotune_options options = tiny_shape_options(64);
  ck_assert_int_eq(autotune_parse_families("update,update_blocks,update_choice", &options.families),
                   CLTTT_SUCCESS);
  const int panels = ttt_fast_weight_in_panels(&device->tuning, 64);
  autotune_result result;
  notes[0] = '\0';
  clttt_set_log_callback(collect_note, NULL);
  int status = autotune_run(device, &options, &result);
  clttt_set_log_callback(NULL, NULL);
  ck_assert_msg(status == CLTTT_SUCCESS, "%s", clttt_last_error());
  int per_family[AUTOTUNE_FAMILY_COUNT] = {0};
  for (int c = 0; c < result.candidate_count; c++) {
    const autotune_candidate *candidate = &result.candidates[c];
    ck_assert_msg(candidate->state == AUTOTUNE_MEASURED, "%s %s: %s (error %g)",
                  autotune_family_name(candidate->family), candidate->label, candidate->failure, candidate->error);
    per_family[candidate->family]++;
  }
  ck_assert_int_ge(per_family[AUTOTUNE_UPDATE_CHOICE], 2);
  if (device->tuning.gemm.variant == PACKED_GEMM_CPU) {
    /* PoCL, as in CI: the defaults keep a 64-row fast weight in panels */
    ck_assert_int_eq(panels, 1);
    ck_assert_int_eq(per_family[AUTOTUNE_UPDATE], 0);
    ck_assert_int_eq(per_family[AUTOTUNE_UPDATE_BLOCKS], 0);
    /* and says why: a family asked for and missing from the table */
    ck_assert_msg(strstr(notes, "update not searched: the TTT fast weight lives in the GEMM's panels") != NULL &&
                      strstr(notes, "update_blocks not searched") != NULL,
                  "%s", notes);
  }
  ck_assert_msg(strstr(notes, "update_choice not searched") == NULL, "%s", notes);
  autotune_result_free(&result);
  clttt_device_close(device);
}
END_TEST

START_TEST(test_cache_location) {
  char path[4096];
  setenv("CLTTT_TUNING_FILE", "/x/y.json", 1);
  ck_assert_int_eq(tuning_cache_path(path, sizeof path), CLTTT_SUCCESS);
  ck_assert_str_eq(path, "/x/y.json");
  unsetenv("CLTTT_TUNING_FILE");
  setenv("XDG_CACHE_HOME", "/cache-home", 1);
  ck_assert_int_eq(tuning_cache_path(path, sizeof path), CLTTT_SUCCESS);
  ck_assert_str_eq(path, "/cache-home/clttt/tuning.json");
  unsetenv("XDG_CACHE_HOME");
  setenv("HOME", "/home/someone", 1);
  ck_assert_int_eq(tuning_cache_path(path, sizeof path), CLTTT_SUCCESS);
  ck_assert_str_eq(path, "/home/someone/.cache/clttt/tuning.json");
}
END_TEST

/* The tuner at tiny, odd shapes: every candidate's output must agree with
 * the host reference (a disagreement is a kernel bug at that geometry), and
 * its winners must be storable and loadable. Hidden 72 is a multiple of no
 * candidate GEMM_NR, so the fast weight stays row-major here whatever the
 * GEMM families pick, and the update families all run
 * (test_tuner_update_into_panels takes the panels). */
START_TEST(test_tuner_small_shapes) {
  clttt_device *device = test_open_device();
  autotune_options options = tiny_shape_options(72);
  autotune_result result;
  int status = autotune_run(device, &options, &result);
  ck_assert_msg(status == CLTTT_SUCCESS, "%s", clttt_last_error());
  int per_family[AUTOTUNE_FAMILY_COUNT] = {0};
  for (int c = 0; c < result.candidate_count; c++) {
    const autotune_candidate *candidate = &result.candidates[c];
    ck_assert_msg(candidate->state == AUTOTUNE_MEASURED, "%s %s: %s", autotune_family_name(candidate->family),
                  candidate->label, candidate->failure);
    ck_assert(candidate->median_ms > 0.0);
    per_family[candidate->family]++;
  }
  for (int f = 0; f < AUTOTUNE_FAMILY_COUNT; f++) {
    if (!autotune_family_applies((autotune_family)f, &result.start, options.shape.hidden)) {
      ck_assert_int_eq(per_family[f], 0); /* the other GEMM variant's tiles, or the row-major update's */
      continue;
    }
    ck_assert_msg(per_family[f] >= 2, "%s: %d candidates", autotune_family_name((autotune_family)f), per_family[f]);
    ck_assert(result.default_ms[f] > 0.0 && result.best_ms[f] > 0.0 && result.best_ms[f] <= result.default_ms[f]);
  }
  /* The device is left with the set it was opened with. */
  ck_assert(tuning_equal(&device->tuning, &result.start));
  ck_assert_int_eq(tuning_cache_store(cache_path, &device->info, &result.best), CLTTT_SUCCESS);
  autotune_result_free(&result);
  clttt_device_close(device);
  device = test_open_device();
  ck_assert_msg(strstr(device->tuning_source, cache_path) != NULL, "%s", device->tuning_source);
  clttt_device_close(device);

  unsigned families = 0;
  ck_assert_int_eq(autotune_parse_families("rope,conv", &families), CLTTT_SUCCESS);
  ck_assert_uint_eq(families, (1u << AUTOTUNE_ROPE) | (1u << AUTOTUNE_CONV));
  ck_assert_int_eq(autotune_parse_families("all", &families), CLTTT_SUCCESS);
  ck_assert_uint_eq(families, AUTOTUNE_ALL_FAMILIES);
  ck_assert_int_eq(autotune_parse_families("rmsnorm,softmax", &families), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_msg(strstr(clttt_last_error(), "softmax") != NULL, "%s", clttt_last_error());
}
END_TEST

/* Any valid parameter set runs the same model: the logits with the defaults
 * and with a deliberately different set from the cache agree. */
static void compare_parameter_sets(const char *fixture_name) {
  enum { N = 70 };
  int32_t tokens[N];
  unlink(cache_path); /* the previous fixture's tuned set */
  test_fixture_model fixture;
  test_fixture_open(&fixture, fixture_name);
  tuning_params defaults;
  tuning_defaults(&fixture.device->info, &defaults);
  ck_assert(tuning_equal(&fixture.device->tuning, &defaults));
  const int vocab = clttt_model_get_config(fixture.model)->vocab_size;
  for (int i = 0; i < N; i++)
    tokens[i] = (int32_t)((i * 37 + 5) % vocab);
  float *expected = test_run(fixture.model, tokens, N, test_run_default);
  test_run_options decode = test_run_default;
  decode.piece = 9;
  float *expected_pieces = test_run(fixture.model, tokens, N, decode);
  const clttt_device_info info = fixture.device->info;
  test_fixture_close(&fixture);

  tuning_params tuned = unusual_params(&info);
  ck_assert_int_eq(tuning_cache_store(cache_path, &info, &tuned), CLTTT_SUCCESS);
  test_fixture_open(&fixture, fixture_name);
  ck_assert_msg(tuning_equal(&fixture.device->tuning, &tuned), "%s: the tuned set is not in use", fixture_name);
  float *got = test_run(fixture.model, tokens, N, test_run_default);
  float *got_pieces = test_run(fixture.model, tokens, N, decode);
  test_fixture_close(&fixture);

  /* Reductions of another width round differently, so 1e-5 of the logits' scale. */
  const size_t count = (size_t)N * (size_t)vocab;
  double largest = test_max_abs(expected, count);
  double tolerance = 1e-5 * (largest > 1.0 ? largest : 1.0);
  double difference = test_max_abs_difference(got, expected, count);
  ck_assert_msg(difference <= tolerance, "%s: tuned and default logits differ by %g (largest logit %g)",
                fixture_name, difference, largest);
  difference = test_max_abs_difference(got_pieces, expected_pieces, count);
  ck_assert_msg(difference <= tolerance, "%s (pieces): tuned and default logits differ by %g (largest logit %g)",
                fixture_name, difference, largest);
  free(expected);
  free(expected_pieces);
  free(got);
  free(got_pieces);
}

START_TEST(test_tuned_and_default_agree) {
  /* Base Qwen3; LLaMA with biases and head_dim 8; TTT with projection
   * (conv, prefix add); TTT on LLaMA with input-embedding targets. */
  static const char *const names[] = {"qwen3-tied", "llama-bias", "ttt-proj-hidden", "ttt-llama-embed"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    compare_parameter_sets(names[i]);
}
END_TEST

/* Vector registers a register tile of rows x columns floats holds. */
static int tile_registers(int rows, int columns, int vector_bytes) {
  return rows * columns * (int)sizeof(float) / vector_bytes;
}

START_TEST(test_cpu_tiles_fit_registers) {
  /* PoCL's CPU device names, as it reports them on an AVX2 EPYC, a Zen 4
   * one and an AVX-512 Xeon. Every accumulator tile must leave a quarter of
   * the vector registers to its operands (an AVX2 machine ran the AVX-512
   * attention tile 1.4x slower, spilled), and the AVX-512 machines must get
   * tiles too wide for AVX2, or their half of the registers is wasted. */
  static const struct {
    const char *name, *vendor;
    int registers, vector_bytes;
  } cpus[] = {{"pthread-haswell-AMD EPYC", "AuthenticAMD", 16, 32},
              {"pthread-znver4-AMD EPYC 9R14", "AuthenticAMD", 32, 64},
              {"pthread-skylake-avx512-Intel(R) Xeon(R) Processor", "GenuineIntel", 32, 64}};
  const int avx2_budget = cpus[0].registers * 3 / 4, avx2_vector_bytes = cpus[0].vector_bytes;
  for (size_t i = 0; i < sizeof cpus / sizeof cpus[0]; i++) {
    clttt_device_info info = {.compute_units = 2};
    snprintf(info.name, sizeof info.name, "%s", cpus[i].name);
    snprintf(info.vendor, sizeof info.vendor, "%s", cpus[i].vendor);
    snprintf(info.type, sizeof info.type, "CPU");
    tuning_params params;
    tuning_defaults(&info, &params);
    int attention = tile_registers(params.attention_tile_rows, params.attention_tile_keys, cpus[i].vector_bytes);
    int gemm = tile_registers(params.gemm.mr, params.gemm.nr, cpus[i].vector_bytes);
    ck_assert_msg(attention <= cpus[i].registers * 3 / 4, "%s: attention tile %d x %d holds %d of %d registers",
                  cpus[i].name, params.attention_tile_rows, params.attention_tile_keys, attention,
                  cpus[i].registers);
    /* P V: each query's ATTENTION_TILE_VALUES float16 of output (at head_dim 128, where none is cut) */
    int values = tile_registers(params.attention_tile_rows, 16 * params.attention_tile_values, cpus[i].vector_bytes);
    ck_assert_msg(values <= cpus[i].registers * 3 / 4, "%s: attention P V tile %d x %d float16 holds %d of %d registers",
                  cpus[i].name, params.attention_tile_rows, params.attention_tile_values, values, cpus[i].registers);
    ck_assert_msg(gemm <= cpus[i].registers * 3 / 4, "%s: GEMM tile %d x %d holds %d of %d registers",
                  cpus[i].name, params.gemm.mr, params.gemm.nr, gemm, cpus[i].registers);
    if (i > 0) {
      ck_assert_msg(tile_registers(params.attention_tile_rows, params.attention_tile_keys, avx2_vector_bytes) >
                        avx2_budget,
                    "%s: attention tile %d x %d would fit AVX2", cpus[i].name, params.attention_tile_rows,
                    params.attention_tile_keys);
      ck_assert_msg(tile_registers(params.gemm.mr, params.gemm.nr, avx2_vector_bytes) > avx2_budget,
                    "%s: GEMM tile %d x %d would fit AVX2", cpus[i].name, params.gemm.mr, params.gemm.nr);
    }
  }
}
END_TEST

/* gemm_decode's weight must outgrow the device's last cache (or the tuner
 * ranks the cache, bench/RESULTS.md section 26) and never outgrow a small
 * device. Each expectation is the arithmetic of the rule, done here by
 * hand: bytes = 4 x cache, capped, then rows of columns bf16 values. */
START_TEST(test_decode_weight_leaves_the_cache) {
  const uint64_t MiB = 1 << 20, GiB = MiB << 10;
  /* Zen 4's 32 MiB L3, 24 GiB, a 4 GiB largest buffer, d 1024: 128 MiB. */
  ck_assert_uint_eq(autotune_decode_weight_rows(32 * MiB, 24 * GiB, 4 * GiB, 1024, 6144), 128 * MiB / 2048);
  /* A Xeon's 480 MiB L3: four times it, capped at 512 MiB. */
  ck_assert_uint_eq(autotune_decode_weight_rows(480 * MiB, 24 * GiB, 4 * GiB, 1024, 6144), 512 * MiB / 2048);
  /* A 2 GiB GPU with a 64 MiB cache: a sixteenth of its memory, 128 MiB. */
  ck_assert_uint_eq(autotune_decode_weight_rows(64 * MiB, 2 * GiB, 1 * GiB, 1024, 6144), 128 * MiB / 2048);
  /* A 32 MiB largest buffer caps it below both. */
  ck_assert_uint_eq(autotune_decode_weight_rows(32 * MiB, 24 * GiB, 32 * MiB, 1024, 6144), 32 * MiB / 2048);
  /* Never below the stacked gate/up rows: a 1 MiB cache at d 2560, f 9728. */
  ck_assert_uint_eq(autotune_decode_weight_rows(1 * MiB, 24 * GiB, 4 * GiB, 2560, 19456), 19456);
  /* No cache or sizes reported: the minimum, and no division by zero. */
  ck_assert_uint_eq(autotune_decode_weight_rows(0, 0, 0, 1024, 6144), 6144);
  ck_assert_uint_eq(autotune_decode_weight_rows(32 * MiB, 0, 0, 0, 6144), 6144);
}
END_TEST

START_TEST(test_candidates_listed_without_device) {
  /* A described NVIDIA GPU with a small local memory and groups of at most
   * 256, never opened: what bench/kernel_options compiles offline for GPUs
   * this machine lacks. The GPU tile families must list candidates that fit
   * the device, and the CPU-variant families none. */
  clttt_device_info info = {.compute_units = 64, .local_memory = 16384, .max_work_group_size = 256};
  snprintf(info.vendor, sizeof info.vendor, "NVIDIA Corporation");
  snprintf(info.type, sizeof info.type, "GPU");
  tuning_params defaults;
  tuning_defaults(&info, &defaults);
  autotune_options options;
  autotune_options_init(&options, 0);
  options.families = AUTOTUNE_ALL_FAMILIES;
  autotune_result result;
  ck_assert_int_eq(autotune_list(&info, &options, &result), CLTTT_SUCCESS);
  int per_family[AUTOTUNE_FAMILY_COUNT] = {0};
  for (int c = 0; c < result.candidate_count; c++) {
    const autotune_candidate *candidate = &result.candidates[c];
    per_family[candidate->family]++;
    if (per_family[candidate->family] == 1)
      ck_assert_msg(candidate->is_default && tuning_equal(&candidate->params, &defaults),
                    "%s: the first candidate is not the defaults", autotune_family_name(candidate->family));
    const packed_gemm_params *gemm = &candidate->params.gemm;
    if (candidate->family == AUTOTUNE_GEMM_GPU) {
      /* a work-group of (NR / ITEM_N) x (TILE_M / ITEM_M), and at least the
       * two local tiles' floats (TILE_M + NR) x TILE_K */
      ck_assert_int_le((gemm->nr / gemm->item_n) * (gemm->tile_m / gemm->item_m), 256);
      ck_assert_int_le((gemm->tile_m + gemm->nr) * gemm->tile_k * (int)sizeof(float), 16384);
    }
    const packed_gemm_update_params *update = &candidate->params.update;
    if (candidate->family == AUTOTUNE_UPDATE_GPU) {
      ck_assert_int_le((update->tile_n / update->item_n) * (update->tile_m / update->item_m), 256);
      ck_assert_int_le((update->tile_m + update->tile_n) * update->tile_k * (int)sizeof(float), 16384);
    }
  }
  /* the full lists hold 12 GEMM and 16 update tile pairs; the largest
   * outgrow 16 KiB or groups of 256, but several smaller ones fit */
  ck_assert_int_ge(per_family[AUTOTUNE_GEMM_GPU], 4);
  ck_assert_int_ge(per_family[AUTOTUNE_UPDATE_GPU], 2);
  ck_assert_int_ge(per_family[AUTOTUNE_RMSNORM], 2);
  static const autotune_family cpu_only[] = {AUTOTUNE_GEMM, AUTOTUNE_GEMM_BLOCKS, AUTOTUNE_GEMM_PREFETCH,
                                             AUTOTUNE_UPDATE, AUTOTUNE_UPDATE_BLOCKS, AUTOTUNE_ATTENTION_PREFETCH};
  for (size_t i = 0; i < sizeof cpu_only / sizeof cpu_only[0]; i++)
    ck_assert_msg(per_family[cpu_only[i]] == 0, "%s listed %d candidates on a GPU",
                  autotune_family_name(cpu_only[i]), per_family[cpu_only[i]]);
  autotune_result_free(&result);
}
END_TEST

static Suite *tuning_suite(void) {
  Suite *suite = suite_create("tuning");
  TCase *cache = tcase_create("cache");
  tcase_add_checked_fixture(cache, setup, teardown);
  tcase_set_timeout(cache, 600);
  tcase_add_test(cache, test_missing_file_gives_defaults);
  tcase_add_test(cache, test_corrupt_file_ignored);
  tcase_add_test(cache, test_foreign_file_ignored);
  tcase_add_test(cache, test_bad_values_ignored);
  tcase_add_test(cache, test_valid_entry_applied);
  tcase_add_test(cache, test_store_is_atomic_and_merges);
  tcase_add_test(cache, test_cache_location);
  tcase_add_test(cache, test_cpu_tiles_fit_registers);
  tcase_add_test(cache, test_candidates_listed_without_device);
  tcase_add_test(cache, test_decode_weight_leaves_the_cache);
  suite_add_tcase(suite, cache);
  TCase *tuner = tcase_create("tuner");
  tcase_add_checked_fixture(tuner, setup, teardown);
  tcase_set_timeout(tuner, 600);
  tcase_add_test(tuner, test_tuner_small_shapes);
  tcase_add_test(tuner, test_tuner_update_into_panels);
  tcase_add_test(tuner, test_tuned_and_default_agree);
  suite_add_tcase(suite, tuner);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(tuning_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
