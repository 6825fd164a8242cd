/* Session files and forks: a saved, loaded or forked session continues
 * exactly as the original (logits bit-identical on the same device), for
 * both architectures with TTT on and the save in the middle of a chunk; a
 * save killed at any step leaves the old file whole; every kind of bad file
 * is refused with CLTTT_ERROR_BAD_SESSION_FILE and leaves nothing behind. */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

#include "fixture.h"
#include "session.h"
#include "session_file.h"
#include "test_model.h"
#include "test_util.h"

/* The format's fixed sizes (README.md, "Session files"), which the
 * corruption tests write at. */
#define HEADER_BYTES 64
#define SECTION_HEADER_BYTES 32
#define PARAMS_BYTES 48

static void sequence(int32_t *tokens, int n, int vocab, int seed) {
  for (int i = 0; i < n; i++)
    tokens[i] = (int32_t)((i * 37 + seed * 101 + 3) % vocab);
}

static clttt_session *new_session(clttt_model *model, int context, int ttt) {
  clttt_session_params params = clttt_session_default_params();
  params.context = context;
  params.ttt = ttt;
  clttt_session *session = NULL;
  int status = clttt_session_create(&session, model, &params);
  ck_assert_msg(status == CLTTT_SUCCESS, "session: %s", clttt_last_error());
  return session;
}

static void feed(clttt_session *session, const int32_t *tokens, int n, float *logits) {
  int status = clttt_session_feed(session, tokens, n, logits, 0);
  ck_assert_msg(status == CLTTT_SUCCESS, "feed: %s: %s", clttt_status_name(status), clttt_last_error());
}

static void save(const clttt_session *session, const char *path) {
  int status = clttt_session_save(session, path);
  ck_assert_msg(status == CLTTT_SUCCESS, "save: %s: %s", clttt_status_name(status), clttt_last_error());
}

/* A session of the fixture's model (TTT on, `context` positions) fed n
 * tokens of sequence(seed), saved as fixture->dir/name (its path into
 * `path`) and freed. */
static void save_fed_session(const test_fixture_model *fixture, int context, int n, int seed, const char *name,
                             char *path, size_t capacity) {
  int32_t tokens[64];
  ck_assert_int_le(n, 64);
  sequence(tokens, n, clttt_model_get_config(fixture->model)->vocab_size, seed);
  clttt_session *session = new_session(fixture->model, context, 1);
  feed(session, tokens, n, NULL);
  snprintf(path, capacity, "%s/%s", fixture->dir, name);
  save(session, path);
  clttt_session_free(session);
}

static clttt_session *load(clttt_model *model, const char *path) {
  clttt_session *session = NULL;
  int status = clttt_session_load(&session, model, path, 0);
  ck_assert_msg(status == CLTTT_SUCCESS, "load %s: %s: %s", path, clttt_status_name(status), clttt_last_error());
  return session;
}

/* The logits of b after a, fed to one new session: a in one call, b in
 * pieces of `piece` (batching changes the order of sums, so a comparison
 * bit for bit needs the same pieces). */
static float *continuation_in_pieces(clttt_model *model, int context, const int32_t *a, int n_a, const int32_t *b,
                                     int n_b, int piece) {
  const int vocab = clttt_model_get_config(model)->vocab_size;
  float *logits = malloc((size_t)n_b * (size_t)vocab * sizeof *logits);
  ck_assert_ptr_nonnull(logits);
  clttt_session *session = new_session(model, context, 1);
  feed(session, a, n_a, NULL);
  for (int done = 0; done < n_b; done += piece)
    feed(session, b + done, n_b - done < piece ? n_b - done : piece, logits + (size_t)done * (size_t)vocab);
  clttt_session_free(session);
  return logits;
}

static float *continuation(clttt_model *model, int context, const int32_t *a, int n_a, const int32_t *b, int n_b) {
  return continuation_in_pieces(model, context, a, n_a, b, n_b, n_b);
}

static int bit_identical(const float *x, const float *y, size_t count) {
  return memcmp(x, y, count * sizeof *x) == 0;
}

/* Feeding A then B in one session equals feeding A, saving, loading into a
 * new session and feeding B: bit for bit, since the same device runs the
 * same kernels on the same bytes. A ends inside a chunk, so the pending h
 * and t rows must travel too; the fast weights have moved once. */
START_TEST(test_save_load_continues_exactly) {
  static const char *const names[] = {"ttt-proj-hidden", "ttt-llama-embed"};
  for (int k = 0; k < 2; k++) {
    test_fixture_model fixture;
    test_fixture_open(&fixture, names[k]);
    const clttt_config *config = clttt_model_get_config(fixture.model);
    const int C = config->ttt_chunk, vocab = config->vocab_size;
    const int n_a = C + 5, n_b = 2 * C + 3, context = n_a + n_b;
    int32_t *a = malloc((size_t)n_a * sizeof *a), *b = malloc((size_t)n_b * sizeof *b);
    sequence(a, n_a, vocab, 1);
    sequence(b, n_b, vocab, 2);
    float *expected = continuation(fixture.model, context, a, n_a, b, n_b);

    char path[700];
    snprintf(path, sizeof path, "%s/a.session", fixture.dir);
    clttt_session *first = new_session(fixture.model, context, 1);
    feed(first, a, n_a, NULL);
    ck_assert_int_eq(first->ttt.pending, 5);
    save(first, path);
    clttt_session_free(first);

    clttt_session *loaded = load(fixture.model, path);
    ck_assert_int_eq(clttt_session_position(loaded), n_a);
    ck_assert_int_eq(loaded->ttt.pending, 5);
    ck_assert(clttt_session_ttt_enabled(loaded));
    int count = 0;
    const int32_t *history = clttt_session_tokens(loaded, &count);
    ck_assert_int_eq(count, n_a);
    ck_assert(memcmp(history, a, (size_t)n_a * sizeof *a) == 0);
    clttt_session_params params = clttt_session_get_params(loaded);
    ck_assert_int_eq(params.context, context);
    ck_assert_int_eq(params.chunk, C);
    ck_assert(params.eta == config->ttt_lr);

    /* The state matters: the same session with its fast weights reset
     * continues differently (so equality below is not vacuous). */
    clttt_session *reset = NULL;
    ck_assert_int_eq(clttt_session_fork(&reset, loaded), CLTTT_SUCCESS);
    ck_assert_int_eq(clttt_session_reset_fast_weights(reset), CLTTT_SUCCESS);
    float *got_reset = malloc((size_t)n_b * (size_t)vocab * sizeof *got_reset);
    feed(reset, b, n_b, got_reset);
    const double moved = test_max_abs_difference(got_reset, expected, (size_t)n_b * (size_t)vocab);

    float *got = malloc((size_t)n_b * (size_t)vocab * sizeof *got);
    feed(loaded, b, n_b, got);
    const double difference = test_max_abs_difference(got, expected, (size_t)n_b * (size_t)vocab);
    printf("%s: loaded vs one session: max |diff| %g (fast weights reset instead: %g)\n", names[k], difference,
           moved);
    ck_assert_msg(bit_identical(got, expected, (size_t)n_b * (size_t)vocab),
                  "%s: the loaded session continues differently (max |diff| %g)", names[k], difference);
    ck_assert_msg(moved > 1e-4, "%s: resetting the fast weights changed the logits by only %g", names[k], moved);
    free(got);
    free(got_reset);
    clttt_session_free(reset);
    clttt_session_free(loaded);
    free(expected);
    free(a);
    free(b);
    test_fixture_close(&fixture);
  }
}
END_TEST

/* A fork fed one continuation and its source fed another equal two fresh
 * runs, interleaved so that any shared buffer would show. */
START_TEST(test_fork_two_continuations) {
  static const char *const names[] = {"ttt-proj-hidden", "ttt-llama-embed"};
  for (int k = 0; k < 2; k++) {
    test_fixture_model fixture;
    test_fixture_open(&fixture, names[k]);
    const clttt_config *config = clttt_model_get_config(fixture.model);
    const int C = config->ttt_chunk, vocab = config->vocab_size;
    const int n_a = 2 * C - 3, n_b = C + 7, context = n_a + n_b;
    int32_t *a = malloc((size_t)n_a * sizeof *a), *b1 = malloc((size_t)n_b * sizeof *b1),
            *b2 = malloc((size_t)n_b * sizeof *b2);
    sequence(a, n_a, vocab, 3);
    sequence(b1, n_b, vocab, 4);
    sequence(b2, n_b, vocab, 5);
    float *expected1 = continuation_in_pieces(fixture.model, context, a, n_a, b1, n_b, 4);
    float *expected2 = continuation_in_pieces(fixture.model, context, a, n_a, b2, n_b, 4);

    clttt_session *source = new_session(fixture.model, context, 1);
    feed(source, a, n_a, NULL);
    clttt_session *copy = NULL;
    ck_assert_int_eq(clttt_session_fork(&copy, source), CLTTT_SUCCESS);
    ck_assert_int_eq(clttt_session_position(copy), n_a);
    ck_assert_int_eq(copy->ttt.pending, C - 3);
    int count = 0;
    ck_assert(memcmp(clttt_session_tokens(copy, &count), a, (size_t)n_a * sizeof *a) == 0);
    ck_assert_int_eq(count, n_a);
    float *got1 = malloc((size_t)n_b * (size_t)vocab * sizeof *got1);
    float *got2 = malloc((size_t)n_b * (size_t)vocab * sizeof *got2);
    test_feed_interleaved(source, copy, b1, b2, n_b, 4, vocab, got1, got2);
    ck_assert_msg(bit_identical(got1, expected1, (size_t)n_b * (size_t)vocab), "%s: the source after forking",
                  names[k]);
    ck_assert_msg(bit_identical(got2, expected2, (size_t)n_b * (size_t)vocab), "%s: the fork", names[k]);
    /* The continuations differ, so each session really followed its own. */
    ck_assert_double_gt(test_max_abs_difference(got1, got2, (size_t)n_b * (size_t)vocab), 1e-3);
    free(got1);
    free(got2);
    clttt_session_free(copy);
    clttt_session_free(source);
    free(expected1);
    free(expected2);
    free(a);
    free(b1);
    free(b2);
    test_fixture_close(&fixture);
  }
}
END_TEST

/* A session saved full loads into a larger context and goes on; feeds
 * that fit one batch in both give the same logits bit for bit. A context
 * below the saved position is refused. */
START_TEST(test_load_into_a_larger_context) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "ttt-llama-embed");
  const int vocab = clttt_model_get_config(fixture.model)->vocab_size, n_a = 45, n_b = 20;
  int32_t a[45], b[20];
  sequence(a, n_a, vocab, 14);
  sequence(b, n_b, vocab, 15);
  float *expected = continuation(fixture.model, n_a + n_b, a, n_a, b, n_b);
  clttt_session *full = new_session(fixture.model, n_a, 1);
  feed(full, a, n_a, NULL);
  ck_assert_int_eq(clttt_session_feed(full, b, 1, NULL, 0), CLTTT_ERROR_CONTEXT_FULL);
  char path[700];
  snprintf(path, sizeof path, "%s/full.session", fixture.dir);
  save(full, path);
  clttt_session_free(full);
  clttt_session *small = (clttt_session *)&small;
  ck_assert_int_eq(clttt_session_load(&small, fixture.model, path, n_a - 1), CLTTT_ERROR_INVALID_ARGUMENT);
  ck_assert_ptr_null(small);
  clttt_session *grown = NULL;
  int status = clttt_session_load(&grown, fixture.model, path, n_a + n_b);
  ck_assert_msg(status == CLTTT_SUCCESS, "%s", clttt_last_error());
  ck_assert_int_eq(clttt_session_get_params(grown).context, n_a + n_b);
  ck_assert_int_eq(clttt_session_position(grown), n_a);
  float *got = malloc((size_t)n_b * (size_t)vocab * sizeof *got);
  feed(grown, b, n_b, got);
  ck_assert(bit_identical(got, expected, (size_t)n_b * (size_t)vocab));
  clttt_session_free(grown);
  free(got);
  free(expected);
  test_fixture_close(&fixture);
}
END_TEST

/* TTT off on a TTT model (no fast-weight sections), and an empty session. */
START_TEST(test_ttt_off_and_empty_sessions) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "ttt-proj-hidden");
  const int vocab = clttt_model_get_config(fixture.model)->vocab_size, n_a = 21, n_b = 9;
  int32_t a[21], b[9];
  sequence(a, n_a, vocab, 6);
  sequence(b, n_b, vocab, 7);
  char path[700];
  snprintf(path, sizeof path, "%s/off.session", fixture.dir);
  clttt_session *off = new_session(fixture.model, 40, 0);
  feed(off, a, n_a, NULL);
  save(off, path);
  clttt_session_file_info info;
  ck_assert_int_eq(clttt_session_read_info(path, &info), CLTTT_SUCCESS);
  ck_assert_int_eq(info.ttt_state, 0);
  ck_assert_int_eq(info.params.ttt, 0);
  ck_assert_int_eq(info.section_count, 3 + 3);
  clttt_session *loaded = load(fixture.model, path);
  ck_assert(!clttt_session_ttt_enabled(loaded));
  float *expected = malloc((size_t)n_b * (size_t)vocab * sizeof *expected);
  float *got = malloc((size_t)n_b * (size_t)vocab * sizeof *got);
  feed(off, b, n_b, expected);
  feed(loaded, b, n_b, got);
  ck_assert(bit_identical(got, expected, (size_t)n_b * (size_t)vocab));
  clttt_session_free(loaded);
  clttt_session_free(off);

  clttt_session *empty = new_session(fixture.model, 16, 1);
  save(empty, path);
  clttt_session_free(empty);
  empty = load(fixture.model, path);
  ck_assert_int_eq(clttt_session_position(empty), 0);
  int count = -1;
  ck_assert_ptr_null(clttt_session_tokens(empty, &count));
  ck_assert_int_eq(count, 0);
  clttt_session_free(empty);
  free(expected);
  free(got);
  test_fixture_close(&fixture);
}
END_TEST

/* The token history follows feeds in any pieces and is cleared by reset. */
START_TEST(test_token_history) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "ttt-llama-embed");
  const int vocab = clttt_model_get_config(fixture.model)->vocab_size, n = 700;
  int32_t *tokens = malloc((size_t)n * sizeof *tokens);
  sequence(tokens, n, vocab, 8);
  clttt_session *session = new_session(fixture.model, n, 1);
  /* Past the history's first capacity (256) and the batch size (512). */
  feed(session, tokens, 3, NULL);
  feed(session, tokens + 3, 600, NULL);
  feed(session, tokens + 603, n - 603, NULL);
  int count = 0;
  const int32_t *history = clttt_session_tokens(session, &count);
  ck_assert_int_eq(count, n);
  ck_assert(memcmp(history, tokens, (size_t)n * sizeof *tokens) == 0);
  ck_assert_int_eq(clttt_session_reset(session), CLTTT_SUCCESS);
  ck_assert_ptr_null(clttt_session_tokens(session, &count));
  ck_assert_int_eq(count, 0);
  feed(session, tokens + 5, 2, NULL);
  history = clttt_session_tokens(session, &count);
  ck_assert_int_eq(count, 2);
  ck_assert_int_eq(history[1], tokens[6]);
  clttt_session_free(session);
  free(tokens);
  test_fixture_close(&fixture);
}
END_TEST

/* What 'clttt session info' prints comes from the file, and the sizes are
 * the state's: tokens, K and V rows of every layer, W and pending rows of
 * every TTT layer, plus the headers. */
START_TEST(test_info_describes_the_file) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "ttt-proj-hidden");
  const clttt_config *config = clttt_model_get_config(fixture.model);
  const int n = 21, pending = n % config->ttt_chunk;
  char path[700];
  save_fed_session(&fixture, 48, n, 9, "info.session", path, sizeof path);
  clttt_session_file_info info;
  ck_assert_int_eq(clttt_session_read_info(path, &info), CLTTT_SUCCESS);
  const uint64_t d = 64, f = 128, kv_dim = 2 * 16, layers = 3, ttt_layers = 2;
  /* The default KV cache holds f16: 2 bytes an element. */
  const uint64_t state = 4 * (uint64_t)n + layers * 2 * (uint64_t)n * kv_dim * 2 +
                         ttt_layers * (d * f + (uint64_t)pending * (f + d)) * 4;
  const int sections = 3 + 3 + 2;
  struct stat file;
  ck_assert_int_eq(stat(path, &file), 0);
  ck_assert_uint_eq(info.state_bytes, state);
  ck_assert_uint_eq(info.file_bytes, (uint64_t)file.st_size);
  ck_assert_int_eq(info.section_count, sections);
  /* Header, section headers, MODEL (27 fields + 2 layers) and PARAMS. */
  ck_assert_uint_eq(info.file_bytes, state + HEADER_BYTES + sections * SECTION_HEADER_BYTES + 4 * (27 + 2) +
                                         PARAMS_BYTES);
  ck_assert_int_eq(info.position, n);
  ck_assert_int_eq(info.pending, pending);
  ck_assert_int_eq(info.ttt_state, 1);
  ck_assert_int_eq(info.params.context, 48);
  ck_assert_int_eq(info.params.chunk, 16);
  ck_assert(info.params.eta == config->ttt_lr);
  ck_assert_int_eq(info.kv_dtype, 1);
  ck_assert_int_eq(info.arch, CLTTT_ARCH_QWEN3);
  ck_assert_int_eq(info.hidden_size, 64);
  ck_assert_int_eq(info.num_hidden_layers, 3);
  ck_assert_int_eq(info.ttt_layer_count, 2);
  ck_assert_int_eq(info.ttt_layers[0], 0);
  ck_assert_int_eq(info.ttt_layers[1], 2);
  ck_assert_uint_eq(info.weight_bytes, clttt_model_weight_bytes(fixture.model));
  ck_assert_uint_ne(info.weights_hash, 0);
  test_fixture_close(&fixture);
}
END_TEST

/* ---------------------------------------------------------------- */
/* Bad files                                                          */

static char *read_all(const char *path, size_t *size) {
  char *data = test_read_file(path, size);
  ck_assert_ptr_nonnull(data);
  return data;
}

static void write_all(const char *path, const void *data, size_t size) {
  FILE *file = fopen(path, "wb");
  ck_assert_ptr_nonnull(file);
  ck_assert_uint_eq(fwrite(data, 1, size, file), size);
  ck_assert_int_eq(fclose(file), 0);
}

static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }
static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}

/* Offset of section `index`'s header in a well-formed file. */
static size_t section_offset(const unsigned char *data, int index) {
  size_t at = HEADER_BYTES;
  for (int i = 0; i < index; i++)
    at += SECTION_HEADER_BYTES + (size_t)get32(data + at + 16);
  return at;
}

/* The checksums of README.md's "Session files", computed here with the
 * libraries it names rather than with the library's own code: version 2
 * takes XXH3-64 (the header checks are its low 32 bits), version 1 zlib's
 * crc32. */
static uint64_t payload_check(int version, const unsigned char *data, size_t bytes) {
  return version >= 2 ? XXH3_64bits(data, bytes) : crc32(0L, data, (uInt)bytes);
}

static uint32_t section_header_check(int version, const unsigned char *header) {
  if (version < 2)
    return (uint32_t)crc32(0L, header, 28);
  unsigned char copy[SECTION_HEADER_BYTES];
  memcpy(copy, header, sizeof copy);
  put32(copy + 12, 0);
  return (uint32_t)XXH3_64bits(copy, sizeof copy);
}

static uint64_t stated_payload_check(int version, const unsigned char *header) {
  return version >= 2 ? get64(header + 24) : get32(header + 24);
}

static uint32_t stated_header_check(int version, const unsigned char *header) {
  return get32(header + (version >= 2 ? 12 : 28));
}

static void fix_section_header_check(int version, unsigned char *header) {
  put32(header + (version >= 2 ? 12 : 28), section_header_check(version, header));
}

/* After editing a section's payload or header: checksums as a writer would
 * set them, so that only the edit itself is wrong. */
static void fix_section_checksums(int version, unsigned char *data, int index) {
  const size_t at = section_offset(data, index);
  const uint64_t check = payload_check(version, data + at + SECTION_HEADER_BYTES, get64(data + at + 16));
  if (version >= 2)
    put64(data + at + 24, check);
  else
    put32(data + at + 24, (uint32_t)check);
  fix_section_header_check(version, data + at);
}

static uint32_t file_header_check(int version, const unsigned char *data) {
  return version >= 2 ? (uint32_t)XXH3_64bits(data, 60) : (uint32_t)crc32(0L, data, 60);
}

static void fix_header_checksum(int version, unsigned char *data) {
  put32(data + 60, file_header_check(version, data));
}

/* A whole tensor of `count` floats from the fixture's own safetensors
 * file, read here without the library (an 8-byte header length, the JSON
 * header, then the data; these fixtures store F32). */
static void read_checkpoint_floats(const char *dir, const char *name, float *out, size_t count) {
  char path[700], key[128];
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  size_t size = 0;
  unsigned char *file = (unsigned char *)test_read_file(path, &size);
  ck_assert_ptr_nonnull(file);
  const uint64_t header = get64(file);
  snprintf(key, sizeof key, "\"%s\"", name);
  const char *entry = strstr((const char *)file + 8, key);
  ck_assert_ptr_nonnull(entry);
  ck_assert_ptr_nonnull(strstr(entry, "\"F32\""));
  const char *offsets = strstr(entry, "\"data_offsets\"");
  ck_assert_ptr_nonnull(offsets);
  unsigned long long begin = 0, end = 0;
  ck_assert_int_eq(sscanf(offsets, "\"data_offsets\" : [ %llu , %llu ]", &begin, &end) == 2 ||
                       sscanf(offsets, "\"data_offsets\":[%llu,%llu]", &begin, &end) == 2,
                   1);
  ck_assert_uint_eq(end - begin, count * sizeof(float));
  ck_assert_uint_le(8 + header + end, size);
  memcpy(out, file + 8 + header + begin, count * sizeof(float));
  free(file);
}

/* A file holds each fast weight row-major, as README's "Session files"
 * says, whatever layout the device keeps it in (the GEMM's panels on a
 * CPU): before any chunk is complete it is W_down, byte for byte. */
START_TEST(test_fast_weights_are_saved_row_major) {
  test_fixture_model fixture;
  test_fixture_open(&fixture, "ttt-proj-hidden");
  const clttt_config *config = clttt_model_get_config(fixture.model);
  const size_t d = (size_t)config->hidden_size, f = (size_t)config->intermediate_size;
  char path[700];
  save_fed_session(&fixture, 32, 5, 4, "row-major.session", path, sizeof path); /* 5 < C = 16: no update yet */
  size_t size = 0;
  unsigned char *data = (unsigned char *)read_all(path, &size);
  float *expected = malloc(d * f * sizeof *expected), *saved = malloc(d * f * sizeof *saved);
  ck_assert(expected && saved);
  for (int t = 0; t < config->ttt_layer_count; t++) {
    const int layer = config->ttt_layers[t];
    char name[96];
    snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.weight", layer);
    read_checkpoint_floats(fixture.dir, name, expected, d * f);
    /* MODEL, PARAMS, TOKENS, a KV section per layer, then the TTT layers */
    const size_t at = section_offset(data, 3 + config->num_hidden_layers + t);
    ck_assert_uint_eq(get32(data + at + 4), (uint32_t)layer);
    ck_assert_uint_le(at + SECTION_HEADER_BYTES + d * f * sizeof(float), size);
    memcpy(saved, data + at + SECTION_HEADER_BYTES, d * f * sizeof(float));
    for (size_t i = 0; i < d * f; i++)
      ck_assert_msg(memcmp(&saved[i], &expected[i], sizeof(float)) == 0,
                    "layer %d: W[%zu][%zu] saved %.9g, W_down %.9g", layer, i / f, i % f, (double)saved[i],
                    (double)expected[i]);
  }
  free(expected);
  free(saved);
  free(data);
  test_fixture_close(&fixture);
}
END_TEST

/* Loading `data` fails with `status` and a message containing `needle`,
 * allocates nothing on the device, and so does reading its info. */
static void expect_refused(clttt_model *model, clttt_device *device, const char *dir, const char *what,
                           const void *data, size_t size, int status, const char *needle) {
  char path[700];
  snprintf(path, sizeof path, "%s/bad.session", dir);
  write_all(path, data, size);
  uint64_t before = 0, after = 0;
  ck_assert_int_eq(clttt_device_memory(device, &before, NULL, 0), CLTTT_SUCCESS);
  clttt_session *session = (clttt_session *)&session; /* must be overwritten with NULL */
  int got = clttt_session_load(&session, model, path, 0);
  const char *message = clttt_last_error();
  printf("%-34s %s: %s\n", what, clttt_status_name(got), message);
  ck_assert_msg(got == status, "%s: %s (%s), expected %s", what, clttt_status_name(got), message,
                clttt_status_name(status));
  ck_assert_msg(strstr(message, needle) != NULL, "%s: message '%s' lacks '%s'", what, message, needle);
  ck_assert_msg(session == NULL, "%s: a failed load left a session", what);
  ck_assert_int_eq(clttt_device_memory(device, &after, NULL, 0), CLTTT_SUCCESS);
  ck_assert_msg(after == before, "%s: %llu bytes of device memory left behind", what,
                (unsigned long long)(after - before));
  if (status == CLTTT_ERROR_BAD_SESSION_FILE && !strstr(what, "model")) {
    clttt_session_file_info info;
    ck_assert_int_eq(clttt_session_read_info(path, &info), CLTTT_ERROR_BAD_SESSION_FILE);
  }
}

/* For each format version clttt reads (_i: 2, then 1). */
START_TEST(test_bad_files_are_refused) {
  const int version = 2 - _i;
  session_file_write_version = version;
  test_fixture_model fixture;
  test_fixture_open(&fixture, "ttt-proj-hidden");
  const int n = 21;
  char path[700];
  save_fed_session(&fixture, 40, n, 10, "good.session", path, sizeof path);
  size_t size = 0;
  unsigned char *good = (unsigned char *)read_all(path, &size);
  unsigned char *data = malloc(size);
  clttt_model *model = fixture.model;
  const char *dir = fixture.dir;
  const int bad = CLTTT_ERROR_BAD_SESSION_FILE;

  /* Truncated anywhere: in the header, in a section header, in a payload,
   * one byte short. */
  const size_t cuts[] = {0, 10, HEADER_BYTES, HEADER_BYTES + 40, size / 2, size - 1};
  for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
    char what[64];
    snprintf(what, sizeof what, "truncated to %zu bytes", cuts[c]);
    expect_refused(model, fixture.device, dir, what, good, cuts[c], bad, cuts[c] < HEADER_BYTES ? "too short" : "truncated");
  }
  /* One byte too many. */
  memcpy(data, good, size);
  unsigned char *longer = malloc(size + 1);
  memcpy(longer, good, size);
  longer[size] = 0;
  expect_refused(model, fixture.device, dir, "one byte appended", longer, size + 1, bad, "too long");
  free(longer);

  memcpy(data, good, size);
  data[0] = 'X';
  expect_refused(model, fixture.device, dir, "wrong magic", data, size, bad, "magic");

  ck_assert_int_eq(get32(good + 8), version);
  memcpy(data, good, size);
  put32(data + 8, 3);
  fix_header_checksum(version, data);
  expect_refused(model, fixture.device, dir, "version 3", data, size, bad, "version 3");
  memcpy(data, good, size);
  put32(data + 8, 0);
  fix_header_checksum(version, data);
  expect_refused(model, fixture.device, dir, "version 0", data, size, bad, "version 0");

  memcpy(data, good, size);
  data[20] ^= 1; /* flags, covered by the header's checksum */
  expect_refused(model, fixture.device, dir, "header bit flipped", data, size, bad, "header checksum");

  /* A byte in the middle of layer 1's K rows. */
  memcpy(data, good, size);
  data[section_offset(good, 4) + SECTION_HEADER_BYTES + 100] ^= 0x40;
  expect_refused(model, fixture.device, dir, "KV payload bit flipped", data, size, bad, "checksum mismatch");

  /* A bit of the last section (the second TTT layer's pending t rows). */
  memcpy(data, good, size);
  data[size - 3] ^= 0x01;
  expect_refused(model, fixture.device, dir, "last byte of TTT rows flipped", data, size, bad, "section 7 (TTT)");

  /* Absurd counts, with their checksums fixed so that only the count is
   * wrong: a position beyond the context, a position the file's length
   * does not fit, a section claiming a terabyte, too many sections. */
  const size_t params = section_offset(good, 1) + SECTION_HEADER_BYTES;
  memcpy(data, good, size);
  put32(data + params + 28, 0x7fffffff);
  fix_section_checksums(version, data, 1);
  expect_refused(model, fixture.device, dir, "position 2^31 - 1", data, size, bad, "beyond the context");

  memcpy(data, good, size);
  put32(data + params + 28, (uint32_t)n - 1);
  put32(data + params + 32, (uint32_t)(n - 1) % 16);
  fix_section_checksums(version, data, 1);
  expect_refused(model, fixture.device, dir, "position one less", data, size, bad, "the file has");

  memcpy(data, good, size);
  put32(data + params + 32, 15);
  fix_section_checksums(version, data, 1);
  expect_refused(model, fixture.device, dir, "pending rows changed", data, size, bad, "the file has");

  memcpy(data, good, size);
  {
    const size_t at = section_offset(good, 3);
    put32(data + at + 16, 0);
    put32(data + at + 20, 256); /* 2^40 bytes */
    fix_section_header_check(version, data + at);
  }
  expect_refused(model, fixture.device, dir, "KV section of 2^40 bytes", data, size, bad, "the state it describes has");

  memcpy(data, good, size);
  put32(data + 16, 1000000);
  fix_header_checksum(version, data);
  expect_refused(model, fixture.device, dir, "a million sections", data, size, bad, "sections");

  memcpy(data, good, size);
  {
    const size_t model_section = section_offset(good, 0) + SECTION_HEADER_BYTES;
    put32(data + model_section + 4 * 3, 1000000); /* layers */
    fix_section_checksums(version, data, 0);
  }
  expect_refused(model, fixture.device, dir, "a million layers", data, size, bad, "layers");

  memcpy(data, good, size);
  put32(data + params + 24, 7); /* no such KV dtype */
  fix_section_checksums(version, data, 1);
  expect_refused(model, fixture.device, dir, "KV dtype 7", data, size, bad, "dtype");

  /* Another model: another architecture, and the same configuration with
   * other weights. */
  test_fixture_model other;
  test_fixture_open(&other, "ttt-llama-embed");
  expect_refused(other.model, other.device, dir, "another model", good, size, bad, "another model");
  test_fixture_close(&other);
  fixture_spec twin = *fixture_find("ttt-proj-hidden");
  twin.name = "ttt-proj-hidden-other-weights";
  char twin_dir[700];
  snprintf(twin_dir, sizeof twin_dir, "%s/twin", dir);
  ck_assert_int_eq(fixture_write(&twin, twin_dir), CLTTT_SUCCESS);
  clttt_model *twin_model = NULL;
  ck_assert_int_eq(clttt_model_load(&twin_model, fixture.device, twin_dir, NULL), CLTTT_SUCCESS);
  expect_refused(twin_model, fixture.device, dir, "same shape, other weights model", good, size, bad,
                 "other weights");
  clttt_model_free(twin_model);

  /* Not there at all: an I/O error, not a bad file. */
  clttt_session *none = NULL;
  ck_assert_int_eq(clttt_session_load(&none, model, "/nonexistent/dir/x.session", 0), CLTTT_ERROR_IO);
  ck_assert_ptr_null(none);
  /* The good file still loads after all that. */
  write_all(path, good, size);
  clttt_session *session = load(model, path);
  ck_assert_int_eq(clttt_session_position(session), n);
  clttt_session_free(session);
  free(data);
  free(good);
  test_fixture_close(&fixture);
  session_file_write_version = 2;
}
END_TEST

/* Every checksum of a file is what README.md says (recomputed here with
 * xxHash and zlib themselves), in both versions; a version 1 file, which
 * clttt no longer writes unless a test asks, holds the same state bytes and
 * continues exactly like a version 2 one. */
static void check_checksums(int version, const unsigned char *data, size_t size) {
  ck_assert_uint_eq(get32(data + 8), (uint32_t)version);
  ck_assert_uint_eq(get32(data + 60), file_header_check(version, data));
  const int count = (int)get32(data + 16);
  size_t at = HEADER_BYTES;
  for (int i = 0; i < count; i++) {
    const uint64_t bytes = get64(data + at + 16);
    ck_assert_uint_le(at + SECTION_HEADER_BYTES + bytes, size);
    ck_assert_msg(stated_header_check(version, data + at) == section_header_check(version, data + at),
                  "version %d, section %d: header check", version, i);
    ck_assert_msg(stated_payload_check(version, data + at) ==
                      payload_check(version, data + at + SECTION_HEADER_BYTES, (size_t)bytes),
                  "version %d, section %d: payload check", version, i);
    at += SECTION_HEADER_BYTES + (size_t)bytes;
  }
  ck_assert_uint_eq(at, size);
}

START_TEST(test_both_format_versions) {
  static const char *const names[] = {"ttt-proj-hidden", "ttt-llama-embed"};
  for (int k = 0; k < 2; k++) {
    test_fixture_model fixture;
    test_fixture_open(&fixture, names[k]);
    const clttt_config *config = clttt_model_get_config(fixture.model);
    const int C = config->ttt_chunk, vocab = config->vocab_size;
    const int n_a = C + 5, n_b = C + 2, context = n_a + n_b;
    int32_t *a = malloc((size_t)n_a * sizeof *a), *b = malloc((size_t)n_b * sizeof *b);
    sequence(a, n_a, vocab, 5);
    sequence(b, n_b, vocab, 6);
    float *expected = continuation(fixture.model, context, a, n_a, b, n_b);
    clttt_session *first = new_session(fixture.model, context, 1);
    feed(first, a, n_a, NULL);
    char paths[2][700];
    unsigned char *files[2];
    size_t sizes[2];
    /* Through buffers of two blocks, so that sections cross buffers, their
     * headers are patched into the written file, and loading reads ahead
     * block by block; the default buffers must write the same bytes. */
    for (int version = 1; version <= 2; version++) {
      snprintf(paths[version - 1], sizeof paths[0], "%s/v%d.session", fixture.dir, version);
      session_file_write_version = version;
      session_file_staging_bytes = 8192;
      save(first, paths[version - 1]);
      session_file_write_version = 2;
      session_file_staging_bytes = (size_t)16 << 20;
      files[version - 1] = (unsigned char *)read_all(paths[version - 1], &sizes[version - 1]);
      check_checksums(version, files[version - 1], sizes[version - 1]);
      ck_assert_uint_gt(sizes[version - 1], 4 * 8192);
    }
    char default_path[720];
    snprintf(default_path, sizeof default_path, "%s/default-buffers.session", fixture.dir);
    save(first, default_path);
    size_t default_size = 0;
    unsigned char *default_file = (unsigned char *)read_all(default_path, &default_size);
    ck_assert_uint_eq(default_size, sizes[1]);
    ck_assert_msg(memcmp(default_file, files[1], default_size) == 0, "small buffers wrote other bytes");
    free(default_file);
    clttt_session_free(first);
    /* The same layout and state: only the checks and the weights hash
     * (words 24 and 25 of MODEL) differ. */
    ck_assert_uint_eq(sizes[0], sizes[1]);
    for (int i = 1; i < (int)get32(files[0] + 16); i++) {
      const size_t at = section_offset(files[0], i);
      ck_assert(memcmp(files[0] + at, files[1] + at, 12) == 0);           /* kind, layer, device */
      ck_assert(memcmp(files[0] + at + 16, files[1] + at + 16, 8) == 0);  /* payload size */
      ck_assert(memcmp(files[0] + at + SECTION_HEADER_BYTES, files[1] + at + SECTION_HEADER_BYTES,
                       (size_t)get64(files[0] + at + 16)) == 0);
    }
    const size_t model_payload = HEADER_BYTES + SECTION_HEADER_BYTES;
    ck_assert(memcmp(files[0] + model_payload, files[1] + model_payload, 4 * 24) == 0);
    ck_assert(memcmp(files[0] + model_payload + 4 * 24, files[1] + model_payload + 4 * 24, 8) != 0);
    for (int version = 1; version <= 2; version++) {
      clttt_session_file_info info;
      ck_assert_int_eq(clttt_session_read_info(paths[version - 1], &info), CLTTT_SUCCESS);
      ck_assert_int_eq(info.version, version);
      session_file_staging_bytes = version == 1 ? 8192 : (size_t)16 << 20;
      clttt_session *loaded = load(fixture.model, paths[version - 1]);
      session_file_staging_bytes = (size_t)16 << 20;
      float *got = malloc((size_t)n_b * (size_t)vocab * sizeof *got);
      feed(loaded, b, n_b, got);
      ck_assert_msg(bit_identical(got, expected, (size_t)n_b * (size_t)vocab),
                    "%s: the version %d file continues differently (max |diff| %g)", names[k], version,
                    test_max_abs_difference(got, expected, (size_t)n_b * (size_t)vocab));
      free(got);
      clttt_session_free(loaded);
      free(files[version - 1]);
    }
    free(expected);
    free(a);
    free(b);
    test_fixture_close(&fixture);
  }
}
END_TEST

/* ---------------------------------------------------------------- */
/* A save killed at any step                                          */

static int kill_stage;

static void kill_at_stage(int stage) {
  if (stage == kill_stage)
    raise(SIGKILL);
}

/* In a new process (OpenCL does not survive fork, so the parent has not
 * touched it yet): feed A, save (the old file), feed B, save again with the
 * hook killing the process at `stage`. Exit codes name what failed before. */
static void child_save_and_die(const char *model_dir, const char *path, const int32_t *a, int n_a,
                               const int32_t *b, int n_b, int stage) {
  clttt_device *device = NULL;
  clttt_model *model = NULL;
  clttt_session *session = NULL;
  clttt_session_params params = clttt_session_default_params();
  params.context = n_a + 2 * n_b;
  if (clttt_device_open(&device, NULL) || clttt_model_load(&model, device, model_dir, NULL) ||
      clttt_session_create(&session, model, &params))
    _exit(10);
  if (clttt_session_feed(session, a, n_a, NULL, 0) || clttt_session_save(session, path))
    _exit(11);
  if (clttt_session_feed(session, b, n_b, NULL, 0))
    _exit(12);
  kill_stage = stage;
  session_file_test_hook = kill_at_stage;
  clttt_session_save(session, path);
  _exit(13); /* the hook never fired */
}

START_TEST(test_killed_save_leaves_old_file) {
  char dir[512], model_dir[600], path[600];
  test_make_temporary_directory(dir, sizeof dir);
  snprintf(model_dir, sizeof model_dir, "%s/model", dir);
  snprintf(path, sizeof path, "%s/state.session", dir);
  ck_assert_int_eq(fixture_write(fixture_find("ttt-proj-hidden"), model_dir), CLTTT_SUCCESS);
  const int n_a = 21, n_b = 12, vocab = 256;
  int32_t a[21], b[12], c[5];
  sequence(a, n_a, vocab, 11);
  sequence(b, n_b, vocab, 12);
  sequence(c, 5, vocab, 13);
  /* Only the header; after MODEL; after KV of layer 0 (mid-file); after
   * the last section, before the sync; complete and synced, before the
   * rename; after the rename (the new file then stands). */
  const int stages[] = {0, 1, 4, 8, -1, -2};
  const int stage_count = (int)(sizeof stages / sizeof stages[0]);
  for (int s = 0; s < stage_count; s++) {
    fflush(NULL);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0)
      child_save_and_die(model_dir, path, a, n_a, b, n_b, stages[s]);
    int status = 0;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "stage %d: the child %s %d", stages[s],
                  WIFEXITED(status) ? "exited with" : "died of signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));

    /* Now this process may use OpenCL: is the file whole, and whose? */
    clttt_session_file_info info;
    int read = clttt_session_read_info(path, &info);
    ck_assert_msg(read == CLTTT_SUCCESS, "stage %d: %s", stages[s], clttt_last_error());
    const int expected_position = stages[s] == -2 ? n_a + n_b : n_a;
    ck_assert_msg(info.position == expected_position, "stage %d: position %d, expected %d", stages[s],
                  info.position, expected_position);
    if (stages[s] == -2)
      unlink(path); /* the next child starts from the old state again */
  }
  /* The survivors hold the old state exactly: continuing from the file
   * equals one session fed A, then C. The killed saves' temporary files
   * are left beside it (a crash cannot clean up), and do not disturb it. */
  fflush(NULL);
  pid_t child = fork();
  ck_assert_int_ge(child, 0);
  if (child == 0)
    child_save_and_die(model_dir, path, a, n_a, b, n_b, 3);
  int status = 0;
  ck_assert_int_eq(waitpid(child, &status, 0), child);
  ck_assert(WIFSIGNALED(status));
  clttt_device *device = test_open_device();
  clttt_model *model = NULL;
  ck_assert_int_eq(clttt_model_load(&model, device, model_dir, NULL), CLTTT_SUCCESS);
  float *expected = continuation(model, n_a + 2 * n_b, a, n_a, c, 5);
  clttt_session *loaded = load(model, path);
  ck_assert_int_eq(clttt_session_position(loaded), n_a);
  float *got = malloc((size_t)5 * vocab * sizeof *got);
  feed(loaded, c, 5, got);
  ck_assert(bit_identical(got, expected, (size_t)5 * vocab));
  clttt_session_free(loaded);
  free(got);
  free(expected);
  clttt_model_free(model);
  clttt_device_close(device);
  test_remove_directory(dir);
}
END_TEST

static Suite *session_file_suite(void) {
  Suite *suite = suite_create("session_file");
  TCase *state = tcase_create("state");
  tcase_add_test(state, test_save_load_continues_exactly);
  tcase_add_test(state, test_fork_two_continuations);
  tcase_add_test(state, test_load_into_a_larger_context);
  tcase_add_test(state, test_ttt_off_and_empty_sessions);
  tcase_add_test(state, test_token_history);
  tcase_add_test(state, test_info_describes_the_file);
  tcase_add_test(state, test_fast_weights_are_saved_row_major);
  suite_add_tcase(suite, state);
  TCase *files = tcase_create("files");
  tcase_add_test(files, test_both_format_versions);
  tcase_add_loop_test(files, test_bad_files_are_refused, 0, 2);
  tcase_add_test(files, test_killed_save_leaves_old_file);
  suite_add_tcase(suite, files);
  return suite;
}

int main(void) {
  SRunner *runner = srunner_create(session_file_suite());
  /* The crash test forks before any OpenCL call of its own process; in
   * no-fork mode earlier tests would have opened the device first. */
  srunner_set_fork_status(runner, CK_FORK);
  srunner_run_all(runner, CK_NORMAL);
  int failed = srunner_ntests_failed(runner);
  srunner_free(runner);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
