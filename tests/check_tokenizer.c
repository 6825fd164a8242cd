/* Tokenizers against golden data made by HuggingFace's `tokenizers` and by an
 * independent Python llama2.c encoder (tests/tokenizer/generate.py). */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test_util.h"
#include "clttt.h"

/* The two tokenizer.json directories the golden files cover; loop tests
 * index this table. */
static const char *const bpe_names[] = {"qwen-like", "llama3-like"};

typedef struct {
  char **items;
  int count;
} string_list;

typedef struct {
  int32_t *ids;
  int count;
} id_row;

/* CI always provides the data, so a missing directory fails the test. */
static const char *data_directory(void) {
  const char *directory = test_environment("CLTTT_TEST_DATA", NULL);
  ck_assert_msg(directory != NULL, "CLTTT_TEST_DATA is not set (make check sets it to the source tests/ directory)");
  struct stat info;
  ck_assert_msg(stat(directory, &info) == 0 && S_ISDIR(info.st_mode), "CLTTT_TEST_DATA=%s is not a directory",
                directory);
  return directory;
}

static const char *stories_directory(void) {
  const char *directory = test_environment("CLTTT_STORIES_DIR", NULL);
  ck_assert_msg(directory != NULL, "CLTTT_STORIES_DIR is not set (make check sets it)");
  struct stat info;
  ck_assert_msg(stat(directory, &info) == 0 && S_ISDIR(info.st_mode), "CLTTT_STORIES_DIR=%s is not a directory",
                directory);
  return directory;
}

static char *read_data_file(const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tokenizer/%s", data_directory(), name);
  char *text = test_read_file(path, NULL);
  ck_assert_msg(text != NULL, "cannot read %s", path);
  return text;
}

/* Splits at '\n' in place; a trailing newline ends the last line rather
 * than starting an empty one. */
static int split_lines(char *text, char ***lines) {
  int capacity = 16, count = 0;
  *lines = malloc((size_t)capacity * sizeof **lines);
  ck_assert_ptr_nonnull(*lines);
  char *line = text;
  while (*line) {
    char *end = strchr(line, '\n');
    if (count == capacity) {
      capacity *= 2;
      *lines = realloc(*lines, (size_t)capacity * sizeof **lines);
      ck_assert_ptr_nonnull(*lines);
    }
    (*lines)[count++] = line;
    if (!end)
      break;
    *end = '\0';
    line = end + 1;
  }
  return count;
}

static char *decode_json_string(const char *line, const char *file, int number) {
  json_error_t error;
  json_t *value = json_loads(line, JSON_DECODE_ANY, &error);
  ck_assert_msg(value && json_is_string(value), "%s line %d is not a JSON string: %s", file, number,
                value ? "(other JSON)" : error.text);
  char *copy = strdup(json_string_value(value));
  ck_assert_ptr_nonnull(copy);
  json_decref(value);
  return copy;
}

static string_list load_cases(const char *name) {
  char *text = read_data_file(name);
  char **lines;
  string_list list;
  list.count = split_lines(text, &lines);
  list.items = malloc((size_t)list.count * sizeof *list.items);
  ck_assert_ptr_nonnull(list.items);
  for (int i = 0; i < list.count; i++)
    list.items[i] = decode_json_string(lines[i], name, i + 1);
  free(lines);
  free(text);
  return list;
}

static void free_cases(string_list *list) {
  for (int i = 0; i < list->count; i++)
    free(list->items[i]);
  free(list->items);
}

static id_row parse_ids(const char *line) {
  id_row row = {NULL, 0};
  int capacity = 0;
  const char *cursor = line;
  for (;;) {
    char *end;
    long value = strtol(cursor, &end, 10);
    if (end == cursor)
      break;
    if (row.count == capacity) {
      capacity = capacity ? capacity * 2 : 16;
      row.ids = realloc(row.ids, (size_t)capacity * sizeof *row.ids);
      ck_assert_ptr_nonnull(row.ids);
    }
    row.ids[row.count++] = (int32_t)value;
    cursor = end;
  }
  return row;
}

static id_row *load_expected(const char *name, int expected_count) {
  char *text = read_data_file(name);
  char **lines;
  int count = split_lines(text, &lines);
  ck_assert_msg(count == expected_count, "%s has %d lines, the cases file %d", name, count, expected_count);
  id_row *rows = calloc((size_t)count, sizeof *rows);
  ck_assert_ptr_nonnull(rows);
  for (int i = 0; i < count; i++)
    rows[i] = parse_ids(lines[i]);
  free(lines);
  free(text);
  return rows;
}

static void free_rows(id_row *rows, int count) {
  for (int i = 0; i < count; i++)
    free(rows[i].ids);
  free(rows);
}

static clttt_tokenizer *load_named(const char *name) {
  char directory[4096];
  snprintf(directory, sizeof directory, "%s/tokenizer/%s", data_directory(), name);
  clttt_tokenizer *tok = NULL;
  int status = clttt_tokenizer_load(&tok, directory);
  ck_assert_msg(status == CLTTT_SUCCESS, "loading %s: %s", directory, clttt_last_error());
  return tok;
}

static clttt_tokenizer *load_stories(void) {
  clttt_tokenizer *tok = NULL;
  int status = clttt_tokenizer_load(&tok, stories_directory());
  ck_assert_msg(status == CLTTT_SUCCESS, "loading stories260K: %s", clttt_last_error());
  ck_assert_str_eq(clttt_tokenizer_kind_name(tok), "llama2c");
  return tok;
}

static char *ids_text(const int32_t *ids, int count) {
  size_t capacity = (size_t)count * 12 + 1, used = 0;
  char *text = malloc(capacity);
  ck_assert_ptr_nonnull(text);
  text[0] = '\0';
  for (int i = 0; i < count; i++)
    used += (size_t)snprintf(text + used, capacity - used, i ? " %d" : "%d", ids[i]);
  return text;
}

static void assert_ids_equal(const int32_t *got, int got_count, const id_row *expected, const char *what,
                             const char *input) {
  int same = got_count == expected->count;
  for (int i = 0; same && i < got_count; i++)
    same = got[i] == expected->ids[i];
  if (!same) {
    char *got_text = ids_text(got, got_count), *expected_text = ids_text(expected->ids, expected->count);
    ck_abort_msg("%s: encoding \"%s\" gave [%s], expected [%s]", what, input, got_text, expected_text);
  }
}

/* A complete, well-formed UTF-8 string: what a streaming chunk must be
 * when the whole text is valid UTF-8. */
static int is_complete_utf8(const char *text) {
  const unsigned char *bytes = (const unsigned char *)text;
  for (size_t i = 0; bytes[i];) {
    unsigned char lead = bytes[i];
    int size = lead < 0x80 ? 1 : lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3
                                                             : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
    if (size == 0)
      return 0;
    for (int k = 1; k < size; k++)
      if ((bytes[i + (size_t)k] & 0xC0) != 0x80)
        return 0;
    i += (size_t)size;
  }
  return 1;
}

/* ------------------------------------------------------------------ */
/* Byte-level BPE                                                       */

START_TEST(test_bpe_expected_ids) {
  const char *name = bpe_names[_i];
  char expected_name[64];
  snprintf(expected_name, sizeof expected_name, "expected-%s.txt", name);
  string_list cases = load_cases("cases.txt");
  ck_assert_int_gt(cases.count, 50);
  id_row *expected = load_expected(expected_name, cases.count);
  clttt_tokenizer *tok = load_named(name);
  ck_assert_str_eq(clttt_tokenizer_kind_name(tok), "bpe");
  for (int i = 0; i < cases.count; i++) {
    int32_t *ids = NULL;
    int count = -1;
    ck_assert_msg(clttt_tokenizer_encode(tok, cases.items[i], 0, &ids, &count) == CLTTT_SUCCESS, "%s case %d: %s", name,
                  i + 1, clttt_last_error());
    assert_ids_equal(ids, count, &expected[i], name, cases.items[i]);
    free(ids);
  }
  clttt_tokenizer_free(tok);
  free_rows(expected, cases.count);
  free_cases(&cases);
}
END_TEST

START_TEST(test_bpe_round_trip) {
  const char *name = bpe_names[_i];
  string_list cases = load_cases("cases.txt");
  clttt_tokenizer *tok = load_named(name);
  for (int i = 0; i < cases.count; i++) {
    int32_t *ids = NULL;
    int count = 0;
    ck_assert_int_eq(clttt_tokenizer_encode(tok, cases.items[i], 0, &ids, &count), CLTTT_SUCCESS);
    char *text = NULL;
    ck_assert_msg(clttt_tokenizer_decode(tok, ids, count, &text) == CLTTT_SUCCESS, "%s: %s", name, clttt_last_error());
    ck_assert_msg(strcmp(text, cases.items[i]) == 0, "%s: \"%s\" decoded back as \"%s\"", name, cases.items[i], text);
    free(text);
    free(ids);
  }
  clttt_tokenizer_free(tok);
  free_cases(&cases);
}
END_TEST

/* Every case streamed id by id: each chunk is whole characters, and the
 * chunks plus the flush are the text. Some case must have held a split
 * character back, or the test would not exercise the point of streaming. */
static void check_streaming(clttt_tokenizer *tok, const string_list *cases, int add_bos, const char *name) {
  clttt_tokenizer_stream *stream = NULL;
  ck_assert_int_eq(clttt_tokenizer_stream_create(&stream, tok), CLTTT_SUCCESS);
  int held_back = 0;
  for (int i = 0; i < cases->count; i++) {
    int32_t *ids = NULL;
    int count = 0;
    ck_assert_int_eq(clttt_tokenizer_encode(tok, cases->items[i], add_bos, &ids, &count), CLTTT_SUCCESS);
    size_t capacity = strlen(cases->items[i]) + 1, used = 0;
    char *joined = calloc(capacity, 1);
    ck_assert_ptr_nonnull(joined);
    clttt_tokenizer_stream_reset(stream);
    for (int k = 0; k <= count; k++) {
      const char *chunk = NULL;
      if (k < count)
        ck_assert_int_eq(clttt_tokenizer_stream_put(stream, ids[k], &chunk), CLTTT_SUCCESS);
      else
        ck_assert_int_eq(clttt_tokenizer_stream_flush(stream, &chunk), CLTTT_SUCCESS);
      ck_assert_msg(is_complete_utf8(chunk), "%s: \"%s\": token %d emitted a partial character", name,
                    cases->items[i], k);
      size_t length = strlen(chunk);
      ck_assert_msg(used + length < capacity, "%s: \"%s\": streaming emitted more than the text", name,
                    cases->items[i]);
      if (k < count && length == 0) {
        char *alone = NULL;
        ck_assert_int_eq(clttt_tokenizer_decode(tok, &ids[k], 1, &alone), CLTTT_SUCCESS);
        held_back |= alone[0] != '\0';
        free(alone);
      }
      memcpy(joined + used, chunk, length);
      used += length;
    }
    ck_assert_msg(strcmp(joined, cases->items[i]) == 0, "%s: streamed \"%s\" as \"%s\"", name, cases->items[i],
                  joined);
    free(joined);
    free(ids);
  }
  ck_assert_msg(held_back, "%s: no case split a character across tokens", name);
  clttt_tokenizer_stream_free(stream);
}

START_TEST(test_bpe_streaming) {
  string_list cases = load_cases("cases.txt");
  clttt_tokenizer *tok = load_named(bpe_names[_i]);
  check_streaming(tok, &cases, 0, bpe_names[_i]);
  clttt_tokenizer_free(tok);
  free_cases(&cases);
}
END_TEST

/* Bytes that can never complete a character come out as they are, and
 * invalid UTF-8 input survives encode and decode byte for byte. */
START_TEST(test_bpe_invalid_utf8) {
  clttt_tokenizer *tok = load_named("qwen-like");
  const char *text = "ok \xff\xfe bad \xe4\xbd lead \xe4\xbd\xa0 good \x80";
  int32_t *ids = NULL;
  int count = 0;
  ck_assert_int_eq(clttt_tokenizer_encode(tok, text, 0, &ids, &count), CLTTT_SUCCESS);
  char *decoded = NULL;
  ck_assert_int_eq(clttt_tokenizer_decode(tok, ids, count, &decoded), CLTTT_SUCCESS);
  ck_assert_str_eq(decoded, text);
  free(decoded);

  clttt_tokenizer_stream *stream = NULL;
  ck_assert_int_eq(clttt_tokenizer_stream_create(&stream, tok), CLTTT_SUCCESS);
  char joined[128] = {0};
  for (int k = 0; k < count; k++) {
    const char *chunk = NULL;
    ck_assert_int_eq(clttt_tokenizer_stream_put(stream, ids[k], &chunk), CLTTT_SUCCESS);
    strcat(joined, chunk);
  }
  const char *rest = NULL;
  ck_assert_int_eq(clttt_tokenizer_stream_flush(stream, &rest), CLTTT_SUCCESS);
  strcat(joined, rest);
  ck_assert_str_eq(joined, text);
  clttt_tokenizer_stream_free(stream);
  free(ids);
  clttt_tokenizer_free(tok);
}
END_TEST

static void assert_encodes_to(const clttt_tokenizer *tok, const char *text, int add_bos, const int32_t *expected,
                              int expected_count) {
  int32_t *ids = NULL;
  int count = 0;
  ck_assert_int_eq(clttt_tokenizer_encode(tok, text, add_bos, &ids, &count), CLTTT_SUCCESS);
  id_row row = {(int32_t *)expected, expected_count};
  assert_ids_equal(ids, count, &row, "special tokens", text);
  free(ids);
}

START_TEST(test_special_tokens) {
  clttt_tokenizer *qwen = load_named("qwen-like");
  int32_t start = clttt_tokenizer_token_to_id(qwen, "<|im_start|>");
  int32_t end = clttt_tokenizer_token_to_id(qwen, "<|im_end|>");
  int32_t think = clttt_tokenizer_token_to_id(qwen, "<think>");
  int32_t end_of_text = clttt_tokenizer_token_to_id(qwen, "<|endoftext|>");
  ck_assert_int_eq(start, 1500);
  ck_assert_int_eq(end, 1501);
  ck_assert_int_eq(think, 1502);
  ck_assert_int_eq(end_of_text, 0);
  ck_assert(clttt_tokenizer_is_special(qwen, start));
  ck_assert(clttt_tokenizer_is_special(qwen, end_of_text));
  ck_assert(!clttt_tokenizer_is_special(qwen, think)); /* added, but not special */
  ck_assert(!clttt_tokenizer_is_special(qwen, 100));
  ck_assert_int_eq(clttt_tokenizer_token_to_id(qwen, "<|im_start"), -1);
  /* HuggingFace: <|im_start|>user\nHi<|im_end|> */
  const int32_t chat[] = {1500, 85, 83, 257, 199, 40, 73, 1501};
  assert_encodes_to(qwen, "<|im_start|>user\nHi<|im_end|>", 0, chat, 8);
  /* Qwen has no BOS: add_bos changes nothing; EOS from tokenizer_config.json. */
  assert_encodes_to(qwen, "<|im_start|>user\nHi<|im_end|>", 1, chat, 8);
  ck_assert_int_eq(clttt_tokenizer_bos(qwen), -1);
  ck_assert_int_eq(clttt_tokenizer_eos(qwen), end);
  const int32_t adjacent[] = {start, end, 0, think};
  assert_encodes_to(qwen, "<|im_start|><|im_end|><|endoftext|><think>", 0, adjacent, 4);
  char *text = NULL;
  ck_assert_int_eq(clttt_tokenizer_decode(qwen, adjacent, 4, &text), CLTTT_SUCCESS);
  ck_assert_str_eq(text, "<|im_start|><|im_end|><|endoftext|><think>");
  free(text);
  ck_assert_int_eq(clttt_tokenizer_vocab_size(qwen), 1504);
  /* Vocabulary pieces are named as tokenizer.json spells them. */
  ck_assert_int_eq(clttt_tokenizer_token_to_id(qwen, "\xc4\xa0the"), 285); /* "Ġthe" */
  ck_assert_int_eq(clttt_tokenizer_token_to_id(qwen, "\xc4\x8a"), 199);    /* "Ċ", a newline */
  const int32_t the[] = {285, 199};
  ck_assert_int_eq(clttt_tokenizer_decode(qwen, the, 2, &text), CLTTT_SUCCESS);
  ck_assert_str_eq(text, " the\n");
  free(text);
  clttt_tokenizer_free(qwen);

  clttt_tokenizer *llama = load_named("llama3-like");
  int32_t begin = clttt_tokenizer_token_to_id(llama, "<|begin_of_text|>");
  ck_assert_int_eq(begin, 0);
  ck_assert_int_eq(clttt_tokenizer_bos(llama), begin); /* from the TemplateProcessing post-processor */
  ck_assert_int_eq(clttt_tokenizer_eos(llama), clttt_tokenizer_token_to_id(llama, "<|end_of_text|>"));
  /* HuggingFace with add_special_tokens: [0, 41, 70, 318, 80] for "Hello". */
  const int32_t hello[] = {0, 41, 70, 318, 80};
  assert_encodes_to(llama, "Hello", 1, hello, 5);
  assert_encodes_to(llama, "Hello", 0, hello + 1, 4);
  const int32_t wrapped[] = {0, 0, 41, 70, 318, 80, 1};
  assert_encodes_to(llama, "<|begin_of_text|>Hello<|end_of_text|>", 1, wrapped, 7);
  clttt_tokenizer_free(llama);
}
END_TEST

START_TEST(test_decode_rejects_unknown_id) {
  clttt_tokenizer *tok = load_named("qwen-like");
  char *text = NULL;
  const int32_t outside[] = {40, 99999};
  ck_assert_int_eq(clttt_tokenizer_decode(tok, outside, 2, &text), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_ptr_null(text);
  const int32_t negative[] = {-1};
  ck_assert_int_eq(clttt_tokenizer_decode(tok, negative, 1, &text), CLTTT_ERROR_INVALID_ARGUMENT);
  clttt_tokenizer_stream *stream = NULL;
  ck_assert_int_eq(clttt_tokenizer_stream_create(&stream, tok), CLTTT_SUCCESS);
  const char *chunk = NULL;
  ck_assert_int_eq(clttt_tokenizer_stream_put(stream, 1504, &chunk), CLTTT_ERROR_INVALID_ARGUMENT);
  clttt_tokenizer_stream_free(stream);
  ck_assert_int_eq(clttt_tokenizer_decode(tok, NULL, 0, &text), CLTTT_SUCCESS);
  ck_assert_str_eq(text, "");
  free(text);
  clttt_tokenizer_free(tok);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Hand-written tokenizer.json files                                    */

/* A byte-level BPE over "a", "b" and "Ġ" (a space) whose first merge joins a
 * space to the following "a": only a pre-tokenizer that splits at spaces
 * keeps that merge from firing. `pre_tokenizer` and `added_tokens` are JSON
 * text spliced in as given (added_tokens NULL: no such key at all). */
static char *small_bpe_json(const char *pre_tokenizer, const char *added_tokens) {
  char *json = malloc(4096);
  ck_assert_ptr_nonnull(json);
  snprintf(json, 4096,
           "{\"version\": \"1.0\",%s%s%s \"normalizer\": null, \"pre_tokenizer\": %s,"
           " \"post_processor\": null, \"decoder\": {\"type\": \"ByteLevel\"},"
           " \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null,"
           " \"vocab\": {\"a\": 0, \"b\": 1, \"\\u0120\": 2, \"\\u0120a\": 3, \"ab\": 4},"
           " \"merges\": [\"\\u0120 a\", \"a b\"]}}",
           added_tokens ? " \"added_tokens\": " : "", added_tokens ? added_tokens : "", added_tokens ? "," : "",
           pre_tokenizer);
  return json;
}

static clttt_tokenizer *load_text(const char *json, char *directory, size_t capacity) {
  test_make_temporary_directory(directory, capacity);
  test_write_text(directory, "tokenizer.json", json);
  clttt_tokenizer *tok = NULL;
  int status = clttt_tokenizer_load(&tok, directory);
  ck_assert_msg(status == CLTTT_SUCCESS, "%s: %s", json, clttt_last_error());
  return tok;
}

static void assert_round_trip(const clttt_tokenizer *tok, const char *text, const int32_t *expected, int expected_count) {
  assert_encodes_to(tok, text, 0, expected, expected_count);
  char *decoded = NULL;
  ck_assert_int_eq(clttt_tokenizer_decode(tok, expected, expected_count, &decoded), CLTTT_SUCCESS);
  ck_assert_str_eq(decoded, text);
  free(decoded);
}

/* HuggingFace's Split with {"String": " "} splits at the literal text (its
 * regex metacharacters escaped); Isolated makes every space its own piece.
 * HuggingFace: "ab ab" -> ["ab", " ", "ab"] -> ids [4, 2, 4]; without the
 * split "Ġ a" would merge first, giving [4, 3, 1]. */
START_TEST(test_split_literal_string) {
  static const char *const pre_tokenizer =
      "{\"type\": \"Sequence\", \"pretokenizers\": ["
      "{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Isolated\", \"invert\": false},"
      "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": false}]}";
  char *json = small_bpe_json(pre_tokenizer, "[]");
  char directory[4096];
  clttt_tokenizer *tok = load_text(json, directory, sizeof directory);
  const int32_t split[] = {4, 2, 4};
  assert_round_trip(tok, "ab ab", split, 3);
  const int32_t spaces[] = {2, 2, 0, 2};
  assert_round_trip(tok, "  a ", spaces, 4);
  clttt_tokenizer_free(tok);
  test_remove_directory(directory);
  free(json);

  /* The same text without the split, as a control: the merge across the
   * space does fire. */
  json = small_bpe_json("{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}", "[]");
  tok = load_text(json, directory, sizeof directory);
  const int32_t merged[] = {4, 3, 1};
  assert_round_trip(tok, "ab ab", merged, 3);
  clttt_tokenizer_free(tok);
  test_remove_directory(directory);
  free(json);

  /* A literal with regex metacharacters matches only itself. */
  json = small_bpe_json("{\"type\": \"Sequence\", \"pretokenizers\": ["
                        "{\"type\": \"Split\", \"pattern\": {\"String\": \"b.\"}, \"behavior\": \"Isolated\"},"
                        "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]}",
                        "[]");
  tok = load_text(json, directory, sizeof directory);
  const int32_t literal[] = {4, 3, 1};
  assert_round_trip(tok, "ab ab", literal, 3);
  clttt_tokenizer_free(tok);
  test_remove_directory(directory);
  free(json);
}
END_TEST

/* added_tokens is optional (and may be empty): such a file has nothing to
 * match before the pre-tokenizer. */
START_TEST(test_no_added_tokens) {
  static const char *const byte_level =
      "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}";
  static const char *const variants[] = {NULL, "[]", "null"};
  for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
    char *json = small_bpe_json(byte_level, variants[i]);
    char directory[4096];
    clttt_tokenizer *tok = load_text(json, directory, sizeof directory);
    ck_assert_int_eq(clttt_tokenizer_vocab_size(tok), 5);
    ck_assert_int_eq(clttt_tokenizer_bos(tok), -1);
    ck_assert_int_eq(clttt_tokenizer_eos(tok), -1);
    /* The GPT-2 regex keeps " ab" together: "Ġ a" then nothing for "b". */
    const int32_t ids[] = {4, 3, 1};
    assert_round_trip(tok, "ab ab", ids, 3);
    clttt_tokenizer_free(tok);
    test_remove_directory(directory);
    free(json);
  }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Load failures                                                        */

static int load_from_text(const char *json, char *directory, size_t capacity) {
  test_make_temporary_directory(directory, capacity);
  if (json)
    test_write_text(directory, "tokenizer.json", json);
  clttt_tokenizer *tok = NULL;
  int status = clttt_tokenizer_load(&tok, directory);
  ck_assert_ptr_null(tok);
  return status;
}

START_TEST(test_unsupported_model_type) {
  char directory[4096];
  int status = load_from_text("{\"version\": \"1.0\", \"added_tokens\": [], \"normalizer\": null,"
                              " \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"},"
                              " \"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\","
                              " \"vocab\": {\"[UNK]\": 0, \"a\": 1}}}",
                              directory, sizeof directory);
  ck_assert_int_eq(status, CLTTT_ERROR_UNSUPPORTED);
  ck_assert_msg(strstr(clttt_last_error(), "WordPiece") != NULL, "message does not name the type: %s",
                clttt_last_error());
  test_remove_directory(directory);

  /* A BPE model behind a non-byte-level pre-tokenizer is also refused. */
  status = load_from_text("{\"pre_tokenizer\": {\"type\": \"Metaspace\"},"
                          " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
                          directory, sizeof directory);
  ck_assert_int_eq(status, CLTTT_ERROR_UNSUPPORTED);
  ck_assert_msg(strstr(clttt_last_error(), "Metaspace") != NULL, "%s", clttt_last_error());
  test_remove_directory(directory);
}
END_TEST

START_TEST(test_malformed_json) {
  static const char *const bad[] = {
      "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}", /* truncated */
      "[1, 2, 3]",                                           /* not an object */
      "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",      /* no model */
      "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -4},"
      " \"merges\": []}}",
      "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1},"
      " \"merges\": [\"a b\"]}}", /* merged token "ab" missing */
      "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0},"
      " \"merges\": [42]}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char directory[4096];
    int status = load_from_text(bad[i], directory, sizeof directory);
    ck_assert_msg(status == CLTTT_ERROR_BAD_TOKENIZER, "case %zu: status %d (%s)", i, status, clttt_last_error());
    ck_assert_msg(strstr(clttt_last_error(), "tokenizer.json") != NULL, "case %zu: message names no file: %s", i,
                  clttt_last_error());
    test_remove_directory(directory);
  }
}
END_TEST

START_TEST(test_missing_files) {
  char directory[4096];
  int status = load_from_text(NULL, directory, sizeof directory);
  ck_assert_int_eq(status, CLTTT_ERROR_IO);
  ck_assert_msg(strstr(clttt_last_error(), directory) != NULL, "message does not name %s: %s", directory,
                clttt_last_error());
  test_remove_directory(directory);

  const char *absent = "/nonexistent/clttt-tokenizer-test";
  clttt_tokenizer *tok = NULL;
  ck_assert_int_eq(clttt_tokenizer_load(&tok, absent), CLTTT_ERROR_IO);
  ck_assert_ptr_null(tok);
  ck_assert_msg(strstr(clttt_last_error(), absent) != NULL, "message does not name %s: %s", absent,
                clttt_last_error());
  ck_assert_int_eq(clttt_tokenizer_load(NULL, absent), CLTTT_ERROR_INVALID_ARGUMENT);
}
END_TEST

/* ------------------------------------------------------------------ */
/* stories260K (llama2.c tok512.bin)                                    */

START_TEST(test_stories_expected_ids) {
  string_list cases = load_cases("stories260K-cases.txt");
  ck_assert_int_gt(cases.count, 5);
  id_row *expected = load_expected("expected-stories260K.txt", cases.count);
  clttt_tokenizer *tok = load_stories();
  ck_assert_int_eq(clttt_tokenizer_vocab_size(tok), 512);
  ck_assert_int_eq(clttt_tokenizer_bos(tok), 1);
  ck_assert_int_eq(clttt_tokenizer_eos(tok), 2);
  for (int i = 0; i < cases.count; i++) {
    int32_t *ids = NULL;
    int count = 0;
    ck_assert_int_eq(clttt_tokenizer_encode(tok, cases.items[i], 1, &ids, &count), CLTTT_SUCCESS);
    assert_ids_equal(ids, count, &expected[i], "stories260K", cases.items[i]);
    char *text = NULL;
    ck_assert_int_eq(clttt_tokenizer_decode(tok, ids, count, &text), CLTTT_SUCCESS);
    ck_assert_msg(strcmp(text, cases.items[i]) == 0, "\"%s\" decoded back as \"%s\"", cases.items[i], text);
    free(text);
    free(ids);
  }
  check_streaming(tok, &cases, 1, "stories260K");
  clttt_tokenizer_free(tok);
  free_rows(expected, cases.count);
  free_cases(&cases);
}
END_TEST

START_TEST(test_stories_greedy_text) {
  char *text = read_data_file("stories260K-greedy.txt");
  char **lines;
  ck_assert_int_eq(split_lines(text, &lines), 2);
  id_row ids = parse_ids(lines[0]);
  ck_assert_int_eq(ids.count, 61);
  char *expected = decode_json_string(lines[1], "stories260K-greedy.txt", 2);
  clttt_tokenizer *tok = load_stories();
  char *decoded = NULL;
  ck_assert_int_eq(clttt_tokenizer_decode(tok, ids.ids, ids.count, &decoded), CLTTT_SUCCESS);
  ck_assert_str_eq(decoded, expected);

  /* Streamed the way the CLI prints generated tokens. */
  clttt_tokenizer_stream *stream = NULL;
  ck_assert_int_eq(clttt_tokenizer_stream_create(&stream, tok), CLTTT_SUCCESS);
  char *joined = calloc(strlen(expected) + 1, 1);
  ck_assert_ptr_nonnull(joined);
  for (int k = 0; k < ids.count; k++) {
    const char *chunk = NULL;
    ck_assert_int_eq(clttt_tokenizer_stream_put(stream, ids.ids[k], &chunk), CLTTT_SUCCESS);
    ck_assert_uint_le(strlen(joined) + strlen(chunk), strlen(expected));
    strcat(joined, chunk);
  }
  ck_assert_str_eq(joined, expected);
  ck_assert_int_eq(clttt_tokenizer_token_to_id(tok, "<s>"), 1);
  ck_assert_int_eq(clttt_tokenizer_token_to_id(tok, "</s>"), 2);
  ck_assert_int_eq(clttt_tokenizer_token_to_id(tok, " the"), 265);
  ck_assert_int_eq(clttt_tokenizer_token_to_id(tok, "<0x0A>"), 13);
  ck_assert(clttt_tokenizer_is_special(tok, 1));
  ck_assert(!clttt_tokenizer_is_special(tok, 300));

  clttt_tokenizer_stream_free(stream);
  free(joined);
  free(decoded);
  clttt_tokenizer_free(tok);
  free(expected);
  free(ids.ids);
  free(lines);
  free(text);
}
END_TEST

static Suite *tokenizer_suite(void) {
  Suite *suite = suite_create("tokenizer");
  TCase *bpe = tcase_create("bpe");
  int bpe_count = (int)(sizeof bpe_names / sizeof bpe_names[0]);
  tcase_add_loop_test(bpe, test_bpe_expected_ids, 0, bpe_count);
  tcase_add_loop_test(bpe, test_bpe_round_trip, 0, bpe_count);
  tcase_add_loop_test(bpe, test_bpe_streaming, 0, bpe_count);
  tcase_add_test(bpe, test_bpe_invalid_utf8);
  tcase_add_test(bpe, test_special_tokens);
  tcase_add_test(bpe, test_decode_rejects_unknown_id);
  suite_add_tcase(suite, bpe);

  TCase *hand_written = tcase_create("hand-written files");
  tcase_add_test(hand_written, test_split_literal_string);
  tcase_add_test(hand_written, test_no_added_tokens);
  suite_add_tcase(suite, hand_written);

  TCase *errors = tcase_create("load errors");
  tcase_add_test(errors, test_unsupported_model_type);
  tcase_add_test(errors, test_malformed_json);
  tcase_add_test(errors, test_missing_files);
  suite_add_tcase(suite, errors);

  TCase *stories = tcase_create("stories260K");
  tcase_add_test(stories, test_stories_expected_ids);
  tcase_add_test(stories, test_stories_greedy_text);
  suite_add_tcase(suite, stories);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(tokenizer_suite());
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
