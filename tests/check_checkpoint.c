/* safetensors validation and checkpoint directories (single file, sharded).
 * Every file is written here byte by byte so that each malformation is exact. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "error.h"
#include "safetensors.h"
#include "test_util.h"

static char directory[4096];

static void setup(void) { test_make_temporary_directory(directory, sizeof directory); }
static void teardown(void) { test_remove_directory(directory); }

static void path_in_directory(char *path, size_t capacity, const char *name) {
  int written = snprintf(path, capacity, "%s/%s", directory, name);
  ck_assert(written > 0 && (size_t)written < capacity);
}

static void write_bytes(const char *name, const void *bytes, size_t size) {
  char path[4096];
  path_in_directory(path, sizeof path, name);
  /* Rewriting in place would truncate, which ext4 answers with a flush on
   * close; a fresh file keeps thousands of rewrites fast. */
  unlink(path);
  FILE *file = fopen(path, "wb");
  ck_assert_msg(file != NULL, "cannot write %s", path);
  if (size)
    ck_assert_uint_eq(fwrite(bytes, 1, size, file), size);
  fclose(file);
}

/* A safetensors file from a literal header: the length prefix, the header
 * exactly as given (no padding, so the data area may start unaligned), then
 * `data`. header_length_override replaces the true length when nonzero. */
static void write_raw_safetensors(const char *name, const char *header, const void *data,
                                  size_t data_size, uint64_t header_length_override) {
  size_t header_size = strlen(header);
  uint64_t length = header_length_override ? header_length_override : header_size;
  size_t total = 8 + header_size + data_size;
  unsigned char *bytes = malloc(total);
  ck_assert_ptr_nonnull(bytes);
  for (int i = 0; i < 8; i++)
    bytes[i] = (unsigned char)(length >> (8 * i));
  memcpy(bytes + 8, header, header_size);
  if (data_size)
    memcpy(bytes + 8 + header_size, data, data_size);
  write_bytes(name, bytes, total);
  free(bytes);
}

typedef struct {
  const char *name;
  const char *dtype;
  int ndim;
  int64_t shape[4];
  const void *data;
  size_t nbytes;
} tensor_spec;

/* A well-formed file: tensors laid out back to back in the order given. */
static void write_safetensors(const char *name, const tensor_spec *specs, int count) {
  char header[8192];
  size_t used = (size_t)snprintf(header, sizeof header, "{\"__metadata__\":{\"format\":\"pt\"}");
  size_t offset = 0;
  for (int i = 0; i < count; i++) {
    used += (size_t)snprintf(header + used, sizeof header - used, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                             specs[i].name, specs[i].dtype);
    for (int d = 0; d < specs[i].ndim; d++)
      used += (size_t)snprintf(header + used, sizeof header - used, "%s%lld", d ? "," : "",
                               (long long)specs[i].shape[d]);
    used += (size_t)snprintf(header + used, sizeof header - used, "],\"data_offsets\":[%zu,%zu]}",
                             offset, offset + specs[i].nbytes);
    offset += specs[i].nbytes;
  }
  snprintf(header + used, sizeof header - used, "}");
  ck_assert_uint_lt(used + 1, sizeof header);
  unsigned char *data = malloc(offset ? offset : 1);
  ck_assert_ptr_nonnull(data);
  offset = 0;
  for (int i = 0; i < count; i++) {
    if (specs[i].nbytes)
      memcpy(data + offset, specs[i].data, specs[i].nbytes);
    offset += specs[i].nbytes;
  }
  write_raw_safetensors(name, header, data, offset, 0);
  free(data);
}

static void assert_message_names(const char *first, const char *second) {
  const char *message = clttt_last_error();
  ck_assert_msg(strstr(message, first) != NULL, "message lacks \"%s\": %s", first, message);
  if (second)
    ck_assert_msg(strstr(message, second) != NULL, "message lacks \"%s\": %s", second, message);
}

/* Opens dir/name expecting `status`; the message must name the file and,
 * when given, the tensor. */
static void expect_open_failure(const char *name, int status, const char *tensor) {
  char path[4096];
  path_in_directory(path, sizeof path, name);
  safetensors_file file;
  int got = safetensors_open(&file, path);
  ck_assert_msg(got == status, "%s: expected %s, got %s (%s)", name, clttt_status_name(status),
                clttt_status_name(got), clttt_last_error());
  assert_message_names(path, tensor);
  /* A failed open leaves nothing to free, and closing it again is harmless. */
  ck_assert_ptr_null(file.map);
  ck_assert_ptr_null(file.tensors);
  safetensors_close(&file);
}

static uint32_t float_bits(float value) {
  uint32_t bits;
  memcpy(&bits, &value, sizeof bits);
  return bits;
}

START_TEST(test_f32_round_trip) {
  const float values[6] = {1.0f, -2.5f, 3.25e-3f, 1e30f, -0.0f, 7.0f};
  const float column[3] = {0.5f, 0.25f, 0.125f};
  /* The 2-byte F16 tensor first shifts the F32 ones off 4-byte alignment. */
  const uint16_t half_one = 0x3C00;
  tensor_spec specs[] = {
      {"odd", "F16", 1, {1}, &half_one, 2},
      {"model.embed_tokens.weight", "F32", 2, {2, 3}, values, sizeof values},
      {"model.norm.weight", "F32", 1, {3}, column, sizeof column},
  };
  write_safetensors("model.safetensors", specs, 3);

  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_SUCCESS);
  ck_assert_int_eq(ckpt.shard_count, 1);
  float out[6];
  const int64_t shape[2] = {2, 3};
  ck_assert_int_eq(checkpoint_read_f32(&ckpt, "model.embed_tokens.weight", shape, 2, out),
                   CLTTT_SUCCESS);
  for (int i = 0; i < 6; i++)
    ck_assert_uint_eq(float_bits(out[i]), float_bits(values[i]));
  const int64_t column_shape[1] = {3};
  ck_assert_int_eq(checkpoint_read_f32(&ckpt, "model.norm.weight", column_shape, 1, out),
                   CLTTT_SUCCESS);
  ck_assert(memcmp(out, column, sizeof column) == 0);

  const safetensors_file *shard = NULL;
  const safetensors_tensor *tensor = checkpoint_find(&ckpt, "model.norm.weight", &shard);
  ck_assert_ptr_nonnull(tensor);
  ck_assert_ptr_eq(shard, &ckpt.shards[0]);
  ck_assert_int_eq(tensor->dtype, SAFETENSORS_F32);
  ck_assert_uint_eq(tensor->nbytes, 12);
  ck_assert_ptr_null(checkpoint_find(&ckpt, "__metadata__", &shard));
  ck_assert_ptr_null(shard);
  checkpoint_close(&ckpt);
  checkpoint_close(&ckpt);
}
END_TEST

START_TEST(test_f16_values) {
  /* 1, -2, smallest subnormal 2^-24, largest subnormal, largest normal 65504,
   * -0, +inf, -inf, NaN, and 0x3555 = 0.333251953125. */
  const uint16_t halves[10] = {0x3C00, 0xC000, 0x0001, 0x03FF, 0x7BFF,
                               0x8000, 0x7C00, 0xFC00, 0x7E00, 0x3555};
  tensor_spec spec = {"h", "F16", 2, {2, 5}, halves, sizeof halves};
  write_safetensors("model.safetensors", &spec, 1);
  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_SUCCESS);
  float out[10];
  const int64_t shape[2] = {2, 5};
  ck_assert_int_eq(checkpoint_read_f32(&ckpt, "h", shape, 2, out), CLTTT_SUCCESS);
  ck_assert(out[0] == 1.0f);
  ck_assert(out[1] == -2.0f);
  ck_assert(out[2] == ldexpf(1.0f, -24));
  ck_assert(out[3] == ldexpf(1023.0f, -24));
  ck_assert(out[4] == 65504.0f);
  ck_assert(out[5] == 0.0f && signbit(out[5]));
  ck_assert(isinf(out[6]) && out[6] > 0);
  ck_assert(isinf(out[7]) && out[7] < 0);
  ck_assert(isnan(out[8]));
  ck_assert(out[9] == 0.333251953125f);
  checkpoint_close(&ckpt);
}
END_TEST

START_TEST(test_bf16_values) {
  /* 1, -3, 0.5, smallest subnormal 2^-133, -inf, 0x3EAB = 0.333984375. */
  const uint16_t bfloats[6] = {0x3F80, 0xC040, 0x3F00, 0x0001, 0xFF80, 0x3EAB};
  tensor_spec spec = {"b", "BF16", 1, {6}, bfloats, sizeof bfloats};
  write_safetensors("model.safetensors", &spec, 1);
  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_SUCCESS);
  float out[6];
  const int64_t shape[1] = {6};
  ck_assert_int_eq(checkpoint_read_f32(&ckpt, "b", shape, 1, out), CLTTT_SUCCESS);
  ck_assert(out[0] == 1.0f);
  ck_assert(out[1] == -3.0f);
  ck_assert(out[2] == 0.5f);
  ck_assert(out[3] == ldexpf(1.0f, -133));
  ck_assert(isinf(out[4]) && out[4] < 0);
  ck_assert(out[5] == 0.333984375f);
  checkpoint_close(&ckpt);
}
END_TEST

START_TEST(test_scalar_and_empty_tensors) {
  const float scalar = 4.5f;
  tensor_spec specs[] = {
      {"scalar", "F32", 0, {0}, &scalar, 4},
      {"empty", "F32", 2, {0, 7}, NULL, 0},
  };
  write_safetensors("model.safetensors", specs, 2);
  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_SUCCESS);
  float out = 0;
  ck_assert_int_eq(checkpoint_read_f32(&ckpt, "scalar", NULL, 0, &out), CLTTT_SUCCESS);
  ck_assert(out == 4.5f);
  const int64_t empty_shape[2] = {0, 7};
  ck_assert_int_eq(checkpoint_read_f32(&ckpt, "empty", empty_shape, 2, &out), CLTTT_SUCCESS);
  checkpoint_close(&ckpt);
}
END_TEST

START_TEST(test_file_shorter_than_eight_bytes) {
  write_bytes("model.safetensors", "\x02\0\0\0", 4);
  expect_open_failure("model.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, NULL);
  write_bytes("empty.safetensors", "", 0);
  expect_open_failure("empty.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, NULL);
}
END_TEST

START_TEST(test_header_length_past_end) {
  write_raw_safetensors("model.safetensors", "{}", NULL, 0, 1000);
  expect_open_failure("model.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "past end of file");
  /* A length near 2^64 must not wrap around the bounds check. */
  write_raw_safetensors("huge.safetensors", "{}", NULL, 0, UINT64_MAX - 3);
  expect_open_failure("huge.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "past end of file");
}
END_TEST

START_TEST(test_malformed_json_header) {
  write_raw_safetensors("model.safetensors", "{\"w\": {\"dtype\": \"F32\",", NULL, 0, 0);
  expect_open_failure("model.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "JSON");
  write_raw_safetensors("list.safetensors", "[1, 2]", NULL, 0, 0);
  expect_open_failure("list.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "not an object");
  write_raw_safetensors("entry.safetensors", "{\"w\": 3}", NULL, 0, 0);
  expect_open_failure("entry.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "w");
}
END_TEST

START_TEST(test_truncated_data_area) {
  /* The header promises 24 bytes; the file stops after 12. */
  const float values[3] = {1, 2, 3};
  write_raw_safetensors("model.safetensors",
                        "{\"model.layers.0.mlp.down_proj.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                        "\"data_offsets\":[0,24]}}",
                        values, sizeof values, 0);
  expect_open_failure("model.safetensors", CLTTT_ERROR_BAD_CHECKPOINT,
                      "model.layers.0.mlp.down_proj.weight");
  assert_message_names("past end", NULL);
}
END_TEST

START_TEST(test_offsets_past_end) {
  const float values[4] = {1, 2, 3, 4};
  write_raw_safetensors("model.safetensors",
                        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"far\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[100,108]}}",
                        values, sizeof values, 0);
  expect_open_failure("model.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "far");
  assert_message_names("past end", NULL);

  write_raw_safetensors("reversed.safetensors",
                        "{\"back\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}",
                        values, sizeof values, 0);
  expect_open_failure("reversed.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "back");

  write_raw_safetensors("negative.safetensors",
                        "{\"neg\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}",
                        values, sizeof values, 0);
  expect_open_failure("negative.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "neg");
}
END_TEST

START_TEST(test_overlapping_tensors) {
  const float values[6] = {0};
  write_raw_safetensors("model.safetensors",
                        "{\"first\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                        "\"second\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
                        values, sizeof values, 0);
  expect_open_failure("model.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "first");
  assert_message_names("second", "overlap");
}
END_TEST

/* The format's data area is exactly the tensors, back to back: bytes after
 * the last one, or between two, mean a writer or a transfer went wrong. */
START_TEST(test_trailing_bytes) {
  const float values[3] = {1, 2, 3};
  write_raw_safetensors("model.safetensors",
                        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", values,
                        sizeof values, 0);
  expect_open_failure("model.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "trailing");
  /* Where the tensors end and where the file does. */
  assert_message_names("8", "12");
}
END_TEST

START_TEST(test_gap_between_tensors) {
  const float values[5] = {1, 2, 3, 4, 5};
  write_raw_safetensors("model.safetensors",
                        "{\"first\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"second\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
                        values, sizeof values, 0);
  expect_open_failure("model.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "first");
  assert_message_names("second", "gap");
  assert_message_names("[8, 12)", NULL);
  /* A data area that starts with unused bytes is a gap too. */
  write_raw_safetensors("leading.safetensors",
                        "{\"late\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", values,
                        12, 0);
  expect_open_failure("leading.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "late");
  assert_message_names("gap", "[0, 4)");
}
END_TEST

/* The format caps the header at 100 MB; a sparse file makes one that long
 * without writing it. */
START_TEST(test_header_over_cap) {
  char path[4096];
  path_in_directory(path, sizeof path, "model.safetensors");
  const uint64_t length = 100000001;
  unsigned char prefix[8];
  for (int i = 0; i < 8; i++)
    prefix[i] = (unsigned char)(length >> (8 * i));
  write_bytes("model.safetensors", prefix, sizeof prefix);
  ck_assert_int_eq(truncate(path, (off_t)(8 + length)), 0);
  expect_open_failure("model.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "100000001");
  assert_message_names("100000000", NULL);
}
END_TEST

START_TEST(test_unsupported_dtype) {
  const int64_t ids[2] = {1, 2};
  write_raw_safetensors("model.safetensors",
                        "{\"position_ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}",
                        ids, sizeof ids, 0);
  expect_open_failure("model.safetensors", CLTTT_ERROR_UNSUPPORTED, "position_ids");
  assert_message_names("I64", NULL);

  write_raw_safetensors("nodtype.safetensors",
                        "{\"w\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,16]}}", ids,
                        sizeof ids, 0);
  expect_open_failure("nodtype.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "w");
}
END_TEST

START_TEST(test_size_not_matching_shape) {
  const float values[6] = {0};
  write_raw_safetensors("model.safetensors",
                        "{\"model.layers.1.self_attn.q_proj.weight\":{\"dtype\":\"F32\","
                        "\"shape\":[2,3],\"data_offsets\":[0,20]}}",
                        values, sizeof values, 0);
  expect_open_failure("model.safetensors", CLTTT_ERROR_BAD_CHECKPOINT,
                      "model.layers.1.self_attn.q_proj.weight");

  write_raw_safetensors("negative_dim.safetensors",
                        "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1,3],\"data_offsets\":[0,12]}}",
                        values, sizeof values, 0);
  expect_open_failure("negative_dim.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "w");

  write_raw_safetensors("many_dims.safetensors",
                        "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                        "\"data_offsets\":[0,4]}}",
                        values, sizeof values, 0);
  expect_open_failure("many_dims.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "w");

  /* Dims whose product wraps 2^64 to a small number. */
  write_raw_safetensors("wrap.safetensors",
                        "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],"
                        "\"data_offsets\":[0,0]}}",
                        values, sizeof values, 0);
  expect_open_failure("wrap.safetensors", CLTTT_ERROR_BAD_CHECKPOINT, "w");
}
END_TEST

START_TEST(test_missing_file) {
  expect_open_failure("absent.safetensors", CLTTT_ERROR_IO, NULL);
  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_ERROR_IO);
  assert_message_names(directory, "model.safetensors");
  checkpoint_close(&ckpt);
}
END_TEST

START_TEST(test_wrong_shape) {
  const float values[6] = {1, 2, 3, 4, 5, 6};
  tensor_spec spec = {"model.layers.0.mlp.gate_proj.weight", "F32", 2, {2, 3}, values, sizeof values};
  write_safetensors("model.safetensors", &spec, 1);
  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_SUCCESS);
  float out[6];
  const int64_t transposed[2] = {3, 2};
  ck_assert_int_eq(checkpoint_read_f32(&ckpt, spec.name, transposed, 2, out),
                   CLTTT_ERROR_SHAPE_MISMATCH);
  assert_message_names("model.safetensors", spec.name);
  assert_message_names("[2, 3]", "[3, 2]");
  const int64_t flat[1] = {6};
  ck_assert_int_eq(checkpoint_read_f32(&ckpt, spec.name, flat, 1, out), CLTTT_ERROR_SHAPE_MISMATCH);
  assert_message_names(spec.name, "[6]");
  const int64_t extra[3] = {2, 3, 1};
  ck_assert_int_eq(checkpoint_read_f32(&ckpt, spec.name, extra, 3, out), CLTTT_ERROR_SHAPE_MISMATCH);
  checkpoint_close(&ckpt);
}
END_TEST

START_TEST(test_missing_tensor) {
  const float values[2] = {1, 2};
  tensor_spec spec = {"model.norm.weight", "F32", 1, {2}, values, sizeof values};
  write_safetensors("model.safetensors", &spec, 1);
  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_SUCCESS);
  float out[2];
  const int64_t shape[3] = {2, 1, 5};
  ck_assert_int_eq(
      checkpoint_read_f32(&ckpt, "model.layers.0.mlp.ttt_conv.weight", shape, 3, out),
      CLTTT_ERROR_MISSING_TENSOR);
  assert_message_names("model.safetensors: tensor model.layers.0.mlp.ttt_conv.weight missing",
                       directory);
  ck_assert_ptr_null(checkpoint_find(&ckpt, "model.layers.0.mlp.ttt_conv.weight", NULL));
  checkpoint_close(&ckpt);
}
END_TEST

static void write_two_shards(void) {
  const float first[4] = {1, 2, 3, 4};
  const uint16_t second[3] = {0x3C00, 0x4000, 0x4200}; /* 1, 2, 3 in F16 */
  tensor_spec shard_one[] = {
      {"model.embed_tokens.weight", "F32", 2, {2, 2}, first, sizeof first},
  };
  tensor_spec shard_two[] = {
      {"model.norm.weight", "F16", 1, {3}, second, sizeof second},
      {"lm_head.weight", "F32", 1, {1}, first, 4},
  };
  write_safetensors("model-00001-of-00002.safetensors", shard_one, 1);
  write_safetensors("model-00002-of-00002.safetensors", shard_two, 2);
}

START_TEST(test_two_shards) {
  write_two_shards();
  test_write_text(directory, "model.safetensors.index.json",
                  "{\"metadata\": {\"total_size\": 26}, \"weight_map\": {"
                  "\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\","
                  "\"model.norm.weight\": \"model-00002-of-00002.safetensors\","
                  "\"lm_head.weight\": \"model-00002-of-00002.safetensors\"}}");
  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_SUCCESS);
  ck_assert_int_eq(ckpt.shard_count, 2);
  float out[4];
  const int64_t embed_shape[2] = {2, 2};
  ck_assert_int_eq(checkpoint_read_f32(&ckpt, "model.embed_tokens.weight", embed_shape, 2, out),
                   CLTTT_SUCCESS);
  ck_assert(out[0] == 1 && out[1] == 2 && out[2] == 3 && out[3] == 4);
  const int64_t norm_shape[1] = {3};
  ck_assert_int_eq(checkpoint_read_f32(&ckpt, "model.norm.weight", norm_shape, 1, out),
                   CLTTT_SUCCESS);
  ck_assert(out[0] == 1 && out[1] == 2 && out[2] == 3);

  const safetensors_file *shard = NULL;
  ck_assert_ptr_nonnull(checkpoint_find(&ckpt, "lm_head.weight", &shard));
  ck_assert_ptr_nonnull(strstr(shard->path, "model-00002-of-00002.safetensors"));
  ck_assert_int_eq(checkpoint_read_f32(&ckpt, "model.layers.9.mlp.up_proj.weight", norm_shape, 1,
                                       out),
                   CLTTT_ERROR_MISSING_TENSOR);
  assert_message_names("model.layers.9.mlp.up_proj.weight", "model.safetensors.index.json");
  checkpoint_close(&ckpt);
}
END_TEST

START_TEST(test_index_names_missing_shard) {
  write_two_shards();
  test_write_text(directory, "model.safetensors.index.json",
                  "{\"weight_map\": {"
                  "\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\","
                  "\"model.norm.weight\": \"model-00003-of-00002.safetensors\"}}");
  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_ERROR_IO);
  assert_message_names("model-00003-of-00002.safetensors", "model.safetensors.index.json");
  ck_assert_ptr_null(ckpt.shards);
  checkpoint_close(&ckpt);
}
END_TEST

START_TEST(test_index_names_tensor_absent_from_shard) {
  write_two_shards();
  test_write_text(directory, "model.safetensors.index.json",
                  "{\"weight_map\": {"
                  "\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\","
                  "\"model.norm.weight\": \"model-00001-of-00002.safetensors\"}}");
  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_ERROR_MISSING_TENSOR);
  assert_message_names("model.norm.weight", "model-00001-of-00002.safetensors");
  checkpoint_close(&ckpt);
}
END_TEST

START_TEST(test_malformed_index) {
  write_two_shards();
  test_write_text(directory, "model.safetensors.index.json", "{\"weight_map\": [1, 2");
  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_ERROR_BAD_CHECKPOINT);
  assert_message_names("model.safetensors.index.json", NULL);
  test_write_text(directory, "model.safetensors.index.json", "{\"weight_map\": {\"w\": 3}}");
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_ERROR_BAD_CHECKPOINT);
  assert_message_names("model.safetensors.index.json", "w");
}
END_TEST

/* Shard names come from the index file, which may come from anywhere: none
 * may name a file outside the model directory. */
START_TEST(test_index_shard_outside_directory) {
  write_two_shards();
  static const char *const escapes[] = {
      "../model-00001-of-00002.safetensors",
      "/etc/passwd",
      "sub/../../model-00001-of-00002.safetensors",
      "..",
      "a/..",
  };
  for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
    char index[1024];
    snprintf(index, sizeof index,
             "{\"weight_map\": {\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\","
             " \"model.norm.weight\": \"%s\"}}",
             escapes[i]);
    test_write_text(directory, "model.safetensors.index.json", index);
    checkpoint ckpt;
    int status = checkpoint_open(&ckpt, directory);
    ck_assert_msg(status == CLTTT_ERROR_BAD_CHECKPOINT, "\"%s\": %s (%s)", escapes[i],
                  clttt_status_name(status), clttt_last_error());
    assert_message_names("model.safetensors.index.json", escapes[i]);
    assert_message_names("model.norm.weight", "outside");
    ck_assert_ptr_null(ckpt.shards);
    checkpoint_close(&ckpt);
  }
  /* A NUL inside the name would hide what follows it from the check; the
   * JSON reader refuses it. */
  test_write_text(directory, "model.safetensors.index.json",
                  "{\"weight_map\": {\"model.embed_tokens.weight\":"
                  " \"model-00001-of-00002.safetensors\\u0000/../x\"}}");
  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_ERROR_BAD_CHECKPOINT);
  assert_message_names("model.safetensors.index.json", NULL);
}
END_TEST

START_TEST(test_tensor_in_two_shards) {
  write_two_shards();
  const float values[2] = {9, 10};
  tensor_spec specs[] = {
      {"model.embed_tokens.weight", "F32", 1, {1}, &values[0], 4},
      {"other", "F32", 1, {1}, &values[1], 4},
  };
  write_safetensors("extra.safetensors", specs, 2);
  test_write_text(directory, "model.safetensors.index.json",
                  "{\"weight_map\": {"
                  "\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\","
                  "\"other\": \"extra.safetensors\"}}");
  checkpoint ckpt;
  ck_assert_int_eq(checkpoint_open(&ckpt, directory), CLTTT_ERROR_BAD_CHECKPOINT);
  assert_message_names("model.embed_tokens.weight", "extra.safetensors");
  assert_message_names("model-00001-of-00002.safetensors", NULL);
}
END_TEST

/* Whatever bytes a file holds, opening it returns a status and never reads
 * outside the mapping (ASan watches): every truncation and many single-byte
 * corruptions of a valid file. */
START_TEST(test_corrupted_files_never_crash) {
  const float values[6] = {1, 2, 3, 4, 5, 6};
  const uint16_t halves[2] = {0x3C00, 0x4000};
  tensor_spec specs[] = {
      {"a", "F32", 2, {2, 3}, values, sizeof values},
      {"b", "BF16", 1, {2}, halves, sizeof halves},
  };
  write_safetensors("model.safetensors", specs, 2);
  char path[4096];
  path_in_directory(path, sizeof path, "model.safetensors");
  size_t size = 0;
  unsigned char *original = (unsigned char *)test_read_file(path, &size);
  ck_assert_ptr_nonnull(original);
  unsigned char *copy = malloc(size);
  ck_assert_ptr_nonnull(copy);
  char mutated_path[4096];
  path_in_directory(mutated_path, sizeof mutated_path, "mutated.safetensors");
  static const unsigned char replacements[] = {'0', '9', ']', '}', '"', ',', '-', 0xff, 0};

  int successes = 0;
  for (size_t length = 0; length < size; length++) {
    write_bytes("mutated.safetensors", original, length);
    safetensors_file file;
    ck_assert_int_ne(safetensors_open(&file, mutated_path), CLTTT_SUCCESS);
    ck_assert_ptr_nonnull(strstr(clttt_last_error(), "mutated.safetensors"));
  }
  for (size_t position = 0; position < size; position++) {
    for (size_t r = 0; r < sizeof replacements; r++) {
      memcpy(copy, original, size);
      copy[position] = replacements[r];
      write_bytes("mutated.safetensors", copy, size);
      safetensors_file file;
      int status = safetensors_open(&file, mutated_path);
      if (status == CLTTT_SUCCESS) {
        successes++;
        float out[8];
        for (int t = 0; t < file.count; t++) {
          const safetensors_tensor *tensor = &file.tensors[t];
          size_t elements = tensor->nbytes / (tensor->dtype == SAFETENSORS_F32 ? 4 : 2);
          if (elements <= 8)
            safetensors_to_f32(tensor, out);
        }
        safetensors_close(&file);
      } else {
        ck_assert_ptr_nonnull(strstr(clttt_last_error(), "mutated.safetensors"));
      }
    }
  }
  /* Data-area corruptions leave the file valid. */
  ck_assert_int_gt(successes, 0);
  free(copy);
  free(original);
}
END_TEST

START_TEST(test_real_stories_checkpoint) {
  const char *stories = test_environment("CLTTT_STORIES_DIR", "tests/models/stories260K");
  checkpoint ckpt;
  int status = checkpoint_open(&ckpt, stories);
  ck_assert_msg(status == CLTTT_SUCCESS, "%s", clttt_last_error());
  float *embed = malloc(512 * 64 * sizeof *embed);
  ck_assert_ptr_nonnull(embed);
  const int64_t shape[2] = {512, 64};
  ck_assert_int_eq(checkpoint_read_f32(&ckpt, "model.embed_tokens.weight", shape, 2, embed),
                   CLTTT_SUCCESS);
  double largest = test_max_abs(embed, 512 * 64);
  ck_assert(isfinite(largest) && largest > 0);
  const int64_t down[2] = {64, 172};
  ck_assert_int_eq(checkpoint_read_f32(&ckpt, "model.layers.4.mlp.down_proj.weight", down, 2,
                                       embed),
                   CLTTT_SUCCESS);
  const int64_t conv[3] = {64, 1, 5};
  ck_assert_int_eq(
      checkpoint_read_f32(&ckpt, "model.layers.0.mlp.ttt_conv.weight", conv, 3, embed),
      CLTTT_ERROR_MISSING_TENSOR);
  free(embed);
  checkpoint_close(&ckpt);
}
END_TEST

static Suite *checkpoint_suite(void) {
  Suite *suite = suite_create("checkpoint");
  TCase *values = tcase_create("values");
  tcase_add_checked_fixture(values, setup, teardown);
  tcase_add_test(values, test_f32_round_trip);
  tcase_add_test(values, test_f16_values);
  tcase_add_test(values, test_bf16_values);
  tcase_add_test(values, test_scalar_and_empty_tensors);
  tcase_add_test(values, test_real_stories_checkpoint);
  suite_add_tcase(suite, values);

  TCase *malformed = tcase_create("malformed");
  tcase_add_checked_fixture(malformed, setup, teardown);
  tcase_add_test(malformed, test_file_shorter_than_eight_bytes);
  tcase_add_test(malformed, test_header_length_past_end);
  tcase_add_test(malformed, test_malformed_json_header);
  tcase_add_test(malformed, test_truncated_data_area);
  tcase_add_test(malformed, test_offsets_past_end);
  tcase_add_test(malformed, test_overlapping_tensors);
  tcase_add_test(malformed, test_trailing_bytes);
  tcase_add_test(malformed, test_gap_between_tensors);
  tcase_add_test(malformed, test_header_over_cap);
  tcase_add_test(malformed, test_unsupported_dtype);
  tcase_add_test(malformed, test_size_not_matching_shape);
  tcase_add_test(malformed, test_missing_file);
  tcase_add_test(malformed, test_wrong_shape);
  tcase_add_test(malformed, test_missing_tensor);
  tcase_add_test(malformed, test_corrupted_files_never_crash);
  suite_add_tcase(suite, malformed);

  TCase *sharded = tcase_create("sharded");
  tcase_add_checked_fixture(sharded, setup, teardown);
  tcase_add_test(sharded, test_two_shards);
  tcase_add_test(sharded, test_index_names_missing_shard);
  tcase_add_test(sharded, test_index_names_tensor_absent_from_shard);
  tcase_add_test(sharded, test_malformed_index);
  tcase_add_test(sharded, test_tensor_in_two_shards);
  tcase_add_test(sharded, test_index_shard_outside_directory);
  suite_add_tcase(suite, sharded);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(checkpoint_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
