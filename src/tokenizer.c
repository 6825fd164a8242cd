/* Byte-level BPE (tokenizer.json) and llama2.c (tok*.bin) tokenizers.
 *
 * Both formats end up in one representation: every id has the raw bytes it
 * decodes to, and a hash map goes from raw bytes back to ids. Byte-level BPE
 * stores its vocabulary with each byte disguised as a printable character
 * (GPT-2's byte-to-unicode table); undoing that at load time lets encoding
 * work on raw bytes and makes decoding a plain concatenation. */
#define _POSIX_C_SOURCE 200809L
#define PCRE2_CODE_UNIT_WIDTH 8

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "clttt.h"
#include "file.h"

enum { TOKENIZER_BPE = 0, TOKENIZER_LLAMA2C = 1 };

enum {
  TOKEN_PRESENT = 1,  /* the id exists (vocabularies may have gaps) */
  TOKEN_IN_VOCAB = 2, /* part of the BPE model's vocabulary, so merges may produce it */
  TOKEN_SPECIAL = 4,
  TOKEN_BYTE = 8,     /* llama2.c <0xNN> byte-fallback piece */
  TOKEN_CONTROL = 16, /* llama2.c BOS/EOS: decode to nothing */
  TOKEN_ADDED = 32    /* has an entry in the added tokens */
};

/* Largest id accepted from a file; real vocabularies stay far below. */
#define MAX_TOKEN_ID (1 << 24)

/* The GPT-2 pre-tokenizer regex, used by a ByteLevel pre-tokenizer with
 * use_regex true (a fixed pattern in HuggingFace's tokenizers). */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef struct {
  unsigned char *bytes; /* what the id decodes to, NUL-terminated, owned */
  int32_t length;
  float score;          /* llama2.c merge score */
  uint8_t flags;
} token_entry;

typedef struct {
  int32_t id;
  const unsigned char *content; /* points into the token's bytes */
  int32_t length;
  uint8_t lstrip, rstrip, normalized;
} added_token;

/* Open addressing, fixed capacity chosen at load (the key count is known). */
typedef struct {
  const unsigned char *key;
  uint64_t hash;
  uint32_t length;
  int32_t value; /* -1 marks an empty slot */
} string_slot;

typedef struct {
  string_slot *slots;
  size_t mask;
} string_map;

typedef struct {
  uint64_t key; /* (left id << 32) | right id; UINT64_MAX marks an empty slot */
  int32_t rank;
  int32_t merged_id;
} pair_slot;

typedef struct {
  pair_slot *slots;
  size_t mask;
} pair_map;

struct clttt_tokenizer {
  int kind;
  char *origin; /* file the tokenizer came from, for messages */
  int32_t vocab_size;
  token_entry *tokens;
  string_map pieces; /* raw bytes -> id over the model vocabulary */
  pair_map merges;
  int32_t byte_ids[256];          /* id of each single byte (-1: none) */
  int32_t byte_fallback_ids[256]; /* BPE byte_fallback: <0xNN> ids */
  int byte_fallback;
  int ignore_merges;
  int32_t unknown_id;
  added_token *added; /* sorted: normalized flag, first byte, longest first */
  int added_count;
  int added_bucket[2][257]; /* [normalized][first byte] -> range in `added` */
  pcre2_code **stages; /* split regexes, applied in order */
  int stage_count;
  int prefix_stage; /* stage at which ByteLevel's add_prefix_space applies */
  int add_prefix_space;
  pcre2_code *space_code; /* \s, for added tokens' lstrip/rstrip */
  int32_t space_id;       /* llama2.c dummy prefix " " */
  int32_t bos, eos;
};

/* ------------------------------------------------------------------ */
/* Hash maps                                                            */

static uint64_t hash_bytes(const unsigned char *bytes, size_t length) {
  uint64_t hash = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < length; i++) {
    hash ^= bytes[i];
    hash *= 1099511628211ull;
  }
  return hash;
}

static uint64_t mix64(uint64_t value) {
  value ^= value >> 33;
  value *= 0xff51afd7ed558ccdull;
  value ^= value >> 33;
  value *= 0xc4ceb9fe1a85ec53ull;
  value ^= value >> 33;
  return value;
}

static size_t table_capacity(size_t expected) {
  size_t capacity = 16;
  while (capacity < expected * 2 + 1)
    capacity *= 2;
  return capacity;
}

static int string_map_init(string_map *map, size_t expected) {
  size_t capacity = table_capacity(expected);
  map->slots = malloc(capacity * sizeof *map->slots);
  if (!map->slots)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory for a %zu-entry map", capacity);
  for (size_t i = 0; i < capacity; i++)
    map->slots[i].value = -1;
  map->mask = capacity - 1;
  return CLTTT_SUCCESS;
}

/* Keeps the first value of a key (later duplicates are ignored). */
static void string_map_insert(string_map *map, const unsigned char *key, size_t length, int32_t value) {
  uint64_t hash = hash_bytes(key, length);
  for (size_t i = (size_t)hash & map->mask;; i = (i + 1) & map->mask) {
    string_slot *slot = &map->slots[i];
    if (slot->value < 0) {
      slot->key = key;
      slot->hash = hash;
      slot->length = (uint32_t)length;
      slot->value = value;
      return;
    }
    if (slot->hash == hash && slot->length == length && memcmp(slot->key, key, length) == 0)
      return;
  }
}

static int32_t string_map_find(const string_map *map, const unsigned char *key, size_t length) {
  if (!map->slots)
    return -1;
  uint64_t hash = hash_bytes(key, length);
  for (size_t i = (size_t)hash & map->mask;; i = (i + 1) & map->mask) {
    const string_slot *slot = &map->slots[i];
    if (slot->value < 0)
      return -1;
    if (slot->hash == hash && slot->length == length && memcmp(slot->key, key, length) == 0)
      return slot->value;
  }
}

static int pair_map_init(pair_map *map, size_t expected) {
  size_t capacity = table_capacity(expected);
  map->slots = malloc(capacity * sizeof *map->slots);
  if (!map->slots)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory for a %zu-entry map", capacity);
  for (size_t i = 0; i < capacity; i++)
    map->slots[i].key = UINT64_MAX;
  map->mask = capacity - 1;
  return CLTTT_SUCCESS;
}

/* A later duplicate overwrites an earlier one, as HuggingFace's loader does. */
static void pair_map_insert(pair_map *map, int32_t left, int32_t right, int32_t rank, int32_t merged_id) {
  uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
  for (size_t i = (size_t)mix64(key) & map->mask;; i = (i + 1) & map->mask) {
    pair_slot *slot = &map->slots[i];
    if (slot->key == UINT64_MAX || slot->key == key) {
      slot->key = key;
      slot->rank = rank;
      slot->merged_id = merged_id;
      return;
    }
  }
}

static const pair_slot *pair_map_find(const pair_map *map, int32_t left, int32_t right) {
  if (!map->slots)
    return NULL;
  uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
  for (size_t i = (size_t)mix64(key) & map->mask;; i = (i + 1) & map->mask) {
    const pair_slot *slot = &map->slots[i];
    if (slot->key == key)
      return slot;
    if (slot->key == UINT64_MAX)
      return NULL;
  }
}

/* ------------------------------------------------------------------ */
/* Growable buffers                                                     */

typedef struct {
  unsigned char *data;
  size_t length, capacity;
} byte_buffer;

static int byte_buffer_reserve(byte_buffer *buffer, size_t extra) {
  if (buffer->length + extra + 1 <= buffer->capacity)
    return CLTTT_SUCCESS;
  size_t capacity = buffer->capacity ? buffer->capacity : 64;
  while (capacity < buffer->length + extra + 1)
    capacity *= 2;
  unsigned char *data = realloc(buffer->data, capacity);
  if (!data)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory for %zu bytes of text", capacity);
  buffer->data = data;
  buffer->capacity = capacity;
  return CLTTT_SUCCESS;
}

/* Keeps the content NUL-terminated so it can be handed out as a string. */
static int byte_buffer_append(byte_buffer *buffer, const unsigned char *bytes, size_t length) {
  CLTTT_TRY(byte_buffer_reserve(buffer, length));
  if (length)
    memcpy(buffer->data + buffer->length, bytes, length);
  buffer->length += length;
  buffer->data[buffer->length] = '\0';
  return CLTTT_SUCCESS;
}

typedef struct {
  int32_t *data;
  size_t count, capacity;
} id_vector;

static int id_vector_push(id_vector *vector, int32_t id) {
  if (vector->count == vector->capacity) {
    size_t capacity = vector->capacity ? vector->capacity * 2 : 256;
    if (capacity > (size_t)INT_MAX)
      return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "tokenizer: text encodes to more than %d tokens", INT_MAX);
    int32_t *data = realloc(vector->data, capacity * sizeof *data);
    if (!data)
      return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory for %zu token ids", capacity);
    vector->data = data;
    vector->capacity = capacity;
  }
  vector->data[vector->count++] = id;
  return CLTTT_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* GPT-2's byte <-> printable character table                           */

/* Bytes that are printable Latin-1 stand for themselves; the others are
 * moved, in increasing order, to code points 256, 257, ... */
static int byte_is_printable(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
}

/* -1 when the code point stands for no byte. The moved bytes are 0..32,
 * 127..160 and 173, in that order. */
static int codepoint_to_byte(uint32_t codepoint) {
  if (codepoint < 256)
    return byte_is_printable((int)codepoint) ? (int)codepoint : -1;
  uint32_t moved = codepoint - 256;
  if (moved < 33)
    return (int)moved;
  if (moved < 67)
    return (int)(127 + moved - 33);
  if (moved == 67)
    return 173;
  return -1;
}

/* Decodes one UTF-8 sequence; returns its length, 0 when malformed. */
static int utf8_decode(const unsigned char *text, size_t length, uint32_t *codepoint) {
  if (length == 0)
    return 0;
  unsigned char lead = text[0];
  int size;
  uint32_t value;
  if (lead < 0x80) {
    *codepoint = lead;
    return 1;
  } else if (lead >= 0xC2 && lead <= 0xDF) {
    size = 2;
    value = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    size = 3;
    value = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    size = 4;
    value = lead & 0x07;
  } else {
    return 0;
  }
  if ((size_t)size > length)
    return 0;
  for (int i = 1; i < size; i++) {
    if ((text[i] & 0xC0) != 0x80)
      return 0;
    value = (value << 6) | (text[i] & 0x3F);
  }
  *codepoint = value;
  return size;
}

/* Undoes the byte disguise of a vocabulary string into `out` (capacity at
 * least strlen(piece)). A string with characters outside the table is kept
 * as it is, which is also what HuggingFace's ByteLevel decoder does. */
static size_t unmap_byte_level(const char *piece, size_t length, unsigned char *out) {
  const unsigned char *text = (const unsigned char *)piece;
  size_t used = 0;
  for (size_t i = 0; i < length;) {
    uint32_t codepoint;
    int size = utf8_decode(text + i, length - i, &codepoint);
    int byte = size ? codepoint_to_byte(codepoint) : -1;
    if (byte < 0) {
      memcpy(out, text, length);
      return length;
    }
    out[used++] = (unsigned char)byte;
    i += (size_t)size;
  }
  return used;
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static char *join_path(const char *directory, const char *name) {
  size_t directory_length = strlen(directory), name_length = strlen(name);
  char *path = malloc(directory_length + name_length + 2);
  if (!path)
    return NULL;
  memcpy(path, directory, directory_length);
  path[directory_length] = '/';
  memcpy(path + directory_length + 1, name, name_length + 1);
  return path;
}

static unsigned char *copy_bytes(const void *bytes, size_t length) {
  unsigned char *copy = malloc(length + 1);
  if (!copy)
    return NULL;
  if (length)
    memcpy(copy, bytes, length);
  copy[length] = '\0';
  return copy;
}

static clttt_tokenizer *tokenizer_new(const char *origin) {
  clttt_tokenizer *tok = calloc(1, sizeof *tok);
  if (!tok)
    return NULL;
  tok->origin = (char *)copy_bytes(origin, strlen(origin));
  if (!tok->origin) {
    free(tok);
    return NULL;
  }
  tok->unknown_id = -1;
  tok->space_id = -1;
  tok->bos = -1;
  tok->eos = -1;
  for (int byte = 0; byte < 256; byte++) {
    tok->byte_ids[byte] = -1;
    tok->byte_fallback_ids[byte] = -1;
  }
  return tok;
}

void clttt_tokenizer_free(clttt_tokenizer *tok) {
  if (!tok)
    return;
  if (tok->tokens) {
    for (int32_t id = 0; id < tok->vocab_size; id++)
      free(tok->tokens[id].bytes);
    free(tok->tokens);
  }
  free(tok->pieces.slots);
  free(tok->merges.slots);
  free(tok->added);
  for (int i = 0; i < tok->stage_count; i++)
    pcre2_code_free(tok->stages[i]);
  free(tok->stages);
  pcre2_code_free(tok->space_code);
  free(tok->origin);
  free(tok);
}

static int32_t find_piece(const clttt_tokenizer *tok, const char *piece) {
  return string_map_find(&tok->pieces, (const unsigned char *)piece, strlen(piece));
}

/* ------------------------------------------------------------------ */
/* llama2.c tok*.bin                                                    */

static int read_whole_file(const char *path, unsigned char **data, size_t *size) {
  char *text = NULL;
  CLTTT_TRY(file_read_all(path, FILE_CAP_LLAMA2C_TOKENIZER, "a llama2.c tokenizer", &text, size));
  *data = (unsigned char *)text;
  return CLTTT_SUCCESS;
}

/* A JSON file read within `cap`; NUL bytes inside it are a JSON error. */
static int load_json_file(const char *path, size_t cap, const char *what, json_t **root) {
  char *text = NULL;
  size_t size = 0;
  *root = NULL;
  CLTTT_TRY(file_read_all(path, cap, what, &text, &size));
  json_error_t error;
  *root = json_loadb(text, size, 0, &error);
  free(text);
  if (!*root)
    return clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: line %d column %d: %s", path, error.line, error.column,
                      error.text);
  return CLTTT_SUCCESS;
}

static int32_t read_int32(const unsigned char *bytes) {
  int32_t value;
  memcpy(&value, bytes, sizeof value);
  return value;
}

/* "<0xNN>" -> NN, else -1. */
static int parse_byte_piece(const unsigned char *piece, int32_t length) {
  if (length != 6 || memcmp(piece, "<0x", 3) != 0 || piece[5] != '>')
    return -1;
  int value = 0;
  for (int i = 3; i < 5; i++) {
    int c = piece[i], digit;
    if (c >= '0' && c <= '9')
      digit = c - '0';
    else if (c >= 'A' && c <= 'F')
      digit = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f')
      digit = c - 'a' + 10;
    else
      return -1;
    value = value * 16 + digit;
  }
  return value;
}

static int load_llama2c(clttt_tokenizer *tok, const char *path) {
  unsigned char *data = NULL;
  size_t size = 0;
  CLTTT_TRY(read_whole_file(path, &data, &size));
  int status = CLTTT_SUCCESS;
  if (size < 4) {
    status = clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: %zu bytes, too short for a llama2.c tokenizer", path, size);
    goto done;
  }
  int32_t max_token_length = read_int32(data);
  if (max_token_length <= 0 || max_token_length > 1 << 16) {
    status = clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: max_token_length %d is not plausible", path,
                        max_token_length);
    goto done;
  }
  /* The file does not store the vocabulary size: count records until EOF. */
  int32_t count = 0;
  for (size_t offset = 4; offset < size; count++) {
    if (size - offset < 8) {
      status = clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: token %d: record header truncated at byte %zu", path,
                          count, offset);
      goto done;
    }
    int32_t length = read_int32(data + offset + 4);
    if (length < 0 || length > max_token_length || (size_t)length > size - offset - 8) {
      status = clttt_fail(CLTTT_ERROR_BAD_TOKENIZER,
                          "%s: token %d: length %d is negative, above max_token_length %d or past the end", path,
                          count, length, max_token_length);
      goto done;
    }
    offset += 8 + (size_t)length;
    if (count >= MAX_TOKEN_ID) {
      status = clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: more than %d tokens", path, MAX_TOKEN_ID);
      goto done;
    }
  }
  if (count < 3) {
    status = clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: %d tokens; <unk>, <s> and </s> at least are needed", path,
                        count);
    goto done;
  }
  tok->kind = TOKENIZER_LLAMA2C;
  tok->vocab_size = count;
  tok->tokens = calloc((size_t)count, sizeof *tok->tokens);
  if (!tok->tokens) {
    status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: out of memory for %d tokens", path, count);
    goto done;
  }
  size_t offset = 4;
  for (int32_t id = 0; id < count; id++) {
    token_entry *entry = &tok->tokens[id];
    memcpy(&entry->score, data + offset, sizeof entry->score);
    int32_t length = read_int32(data + offset + 4);
    const unsigned char *piece = data + offset + 8;
    offset += 8 + (size_t)length;
    int byte = parse_byte_piece(piece, length);
    if (byte >= 0) {
      /* Decoding wants the byte itself, merging the piece as the file
       * spells it ("<0x0A>"): keep both, the spelling after the byte's NUL. */
      entry->bytes = malloc(2 + (size_t)length + 1);
      if (entry->bytes) {
        entry->bytes[0] = (unsigned char)byte;
        entry->bytes[1] = '\0';
        memcpy(entry->bytes + 2, piece, (size_t)length);
        entry->bytes[2 + length] = '\0';
      }
    } else {
      entry->bytes = copy_bytes(piece, (size_t)length);
    }
    if (!entry->bytes) {
      status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: out of memory", path);
      goto done;
    }
    entry->length = byte >= 0 ? 1 : length;
    entry->flags = TOKEN_PRESENT | (byte >= 0 ? TOKEN_BYTE : 0);
    if (byte >= 0 && tok->byte_ids[byte] < 0)
      tok->byte_ids[byte] = id;
  }
  tok->bos = 1;
  tok->eos = 2;
  tok->unknown_id = 0;
  tok->tokens[0].flags |= TOKEN_SPECIAL;
  tok->tokens[1].flags |= TOKEN_SPECIAL | TOKEN_CONTROL;
  tok->tokens[2].flags |= TOKEN_SPECIAL | TOKEN_CONTROL;

  /* llama2.c looks merged strings up among all pieces as the file spells
   * them, byte pieces included. */
  status = string_map_init(&tok->pieces, (size_t)count);
  if (status != CLTTT_SUCCESS)
    goto done;
  for (int32_t id = 0; id < count; id++) {
    token_entry *entry = &tok->tokens[id];
    if (entry->flags & TOKEN_BYTE)
      string_map_insert(&tok->pieces, entry->bytes + 2, 6, id);
    else
      string_map_insert(&tok->pieces, entry->bytes, (size_t)entry->length, id);
  }
  /* llama2.c adds byte + 3 for bytes without a piece: the layout of every
   * llama2.c vocabulary (<unk>, <s>, </s>, then 256 byte pieces). */
  for (int byte = 0; byte < 256; byte++)
    if (tok->byte_ids[byte] < 0)
      tok->byte_ids[byte] = byte + 3 < count ? byte + 3 : tok->unknown_id;
  tok->space_id = find_piece(tok, " ");

done:
  free(data);
  return status;
}

/* ------------------------------------------------------------------ */
/* tokenizer.json                                                       */

static const char *json_type_name(json_t *object) {
  json_t *type = json_object_get(object, "type");
  return json_is_string(type) ? json_string_value(type) : "(no type)";
}

static int check_normalizer(const char *path, json_t *normalizer) {
  if (!normalizer || json_is_null(normalizer))
    return CLTTT_SUCCESS;
  const char *type = json_type_name(normalizer);
  if (strcmp(type, "NFC") == 0)
    return CLTTT_SUCCESS;
  if (strcmp(type, "Sequence") == 0) {
    json_t *list = json_object_get(normalizer, "normalizers");
    size_t index;
    json_t *item;
    json_array_foreach(list, index, item) CLTTT_TRY(check_normalizer(path, item));
    return CLTTT_SUCCESS;
  }
  return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "%s: normalizer type \"%s\" is not supported (only none or NFC)", path,
                    type);
}

static int compile_pattern(pcre2_code **out, const char *path, const char *pattern, int literal) {
  /* PCRE2 refuses PCRE2_UCP together with PCRE2_LITERAL (a literal has no
   * \w or \d for Unicode properties to change), so it is left out there. */
  uint32_t options =
      PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  int error_code;
  PCRE2_SIZE error_offset;
  pcre2_code *code =
      pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, options, &error_code, &error_offset, NULL);
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof message);
    return clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: pre_tokenizer regex \"%s\", offset %zu: %s", path, pattern,
                      (size_t)error_offset, (const char *)message);
  }
  /* JIT is only a speed-up; without it PCRE2 interprets the same pattern. */
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  *out = code;
  return CLTTT_SUCCESS;
}

static int add_stage(clttt_tokenizer *tok, const char *path, const char *pattern, int literal) {
  pcre2_code **stages = realloc(tok->stages, (size_t)(tok->stage_count + 1) * sizeof *stages);
  if (!stages)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: out of memory", path);
  tok->stages = stages;
  CLTTT_TRY(compile_pattern(&tok->stages[tok->stage_count], path, pattern, literal));
  tok->stage_count++;
  return CLTTT_SUCCESS;
}

static int add_split_stage(clttt_tokenizer *tok, const char *path, json_t *split) {
  const char *behavior = json_string_value(json_object_get(split, "behavior"));
  if (!behavior || strcmp(behavior, "Isolated") != 0)
    return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "%s: Split pre-tokenizer behavior \"%s\" is not supported (only Isolated)",
                      path, behavior ? behavior : "(none)");
  if (json_is_true(json_object_get(split, "invert")))
    return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "%s: Split pre-tokenizer with invert true is not supported", path);
  json_t *pattern = json_object_get(split, "pattern");
  const char *regex = json_string_value(json_object_get(pattern, "Regex"));
  const char *literal = json_string_value(json_object_get(pattern, "String"));
  if (!regex && !literal)
    return clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: Split pre-tokenizer without a Regex or String pattern", path);
  return add_stage(tok, path, regex ? regex : literal, regex == NULL);
}

static int add_byte_level(clttt_tokenizer *tok, const char *path, json_t *byte_level) {
  tok->prefix_stage = tok->stage_count;
  tok->add_prefix_space = json_is_true(json_object_get(byte_level, "add_prefix_space"));
  /* use_regex defaults to true in HuggingFace's tokenizers. */
  json_t *use_regex = json_object_get(byte_level, "use_regex");
  if (!use_regex || json_is_true(use_regex))
    CLTTT_TRY(add_stage(tok, path, gpt2_pattern, 0));
  return CLTTT_SUCCESS;
}

static int parse_pre_tokenizer(clttt_tokenizer *tok, const char *path, json_t *pre_tokenizer) {
  if (!pre_tokenizer || json_is_null(pre_tokenizer))
    return clttt_fail(CLTTT_ERROR_UNSUPPORTED,
                      "%s: pre_tokenizer is null; only byte-level BPE (a ByteLevel pre-tokenizer) is supported", path);
  const char *type = json_type_name(pre_tokenizer);
  if (strcmp(type, "ByteLevel") == 0)
    return add_byte_level(tok, path, pre_tokenizer);
  if (strcmp(type, "Sequence") != 0)
    return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "%s: pre_tokenizer type \"%s\" is not supported", path, type);
  json_t *list = json_object_get(pre_tokenizer, "pretokenizers");
  size_t count = json_array_size(list);
  for (size_t index = 0; index < count; index++) {
    json_t *item = json_array_get(list, index);
    const char *item_type = json_type_name(item);
    if (strcmp(item_type, "Split") == 0) {
      CLTTT_TRY(add_split_stage(tok, path, item));
    } else if (strcmp(item_type, "ByteLevel") == 0) {
      /* Its byte mapping must come last: later splits would see disguised
       * bytes instead of text. */
      if (index + 1 != count)
        return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "%s: ByteLevel must be the last pre-tokenizer of the Sequence",
                          path);
      return add_byte_level(tok, path, item);
    } else {
      return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "%s: pre_tokenizer type \"%s\" is not supported", path, item_type);
    }
  }
  return clttt_fail(CLTTT_ERROR_UNSUPPORTED,
                    "%s: pre_tokenizer Sequence without ByteLevel; only byte-level BPE is supported", path);
}

static int check_decoder(const char *path, json_t *decoder) {
  if (!decoder || json_is_null(decoder))
    return CLTTT_SUCCESS;
  const char *type = json_type_name(decoder);
  if (strcmp(type, "ByteLevel") == 0)
    return CLTTT_SUCCESS;
  if (strcmp(type, "Sequence") == 0) {
    json_t *list = json_object_get(decoder, "decoders");
    size_t index;
    json_t *item;
    json_array_foreach(list, index, item) CLTTT_TRY(check_decoder(path, item));
    return CLTTT_SUCCESS;
  }
  return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "%s: decoder type \"%s\" is not supported (only ByteLevel)", path,
                    type);
}

static int read_id(const char *path, json_t *value, const char *what, const char *name, int32_t *id) {
  if (!json_is_integer(value) || json_integer_value(value) < 0 || json_integer_value(value) >= MAX_TOKEN_ID)
    return clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: %s \"%s\": id is not an integer in [0, %d)", path, what, name,
                      MAX_TOKEN_ID);
  *id = (int32_t)json_integer_value(value);
  return CLTTT_SUCCESS;
}

/* Raw-bytes id of a vocabulary string as tokenizer.json spells it. */
static int32_t find_mapped_piece(const clttt_tokenizer *tok, const char *piece, unsigned char *scratch) {
  size_t length = unmap_byte_level(piece, strlen(piece), scratch);
  return string_map_find(&tok->pieces, scratch, length);
}

static int load_vocabulary(clttt_tokenizer *tok, const char *path, json_t *model, json_t *added_tokens) {
  json_t *vocabulary = json_object_get(model, "vocab");
  if (!json_is_object(vocabulary))
    return clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: model.vocab is missing or not an object", path);
  if (!json_is_array(added_tokens) && added_tokens && !json_is_null(added_tokens))
    return clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: added_tokens is not an array", path);

  int32_t highest = -1;
  const char *key;
  json_t *value;
  json_object_foreach(vocabulary, key, value) {
    int32_t id;
    CLTTT_TRY(read_id(path, value, "model.vocab", key, &id));
    if (id > highest)
      highest = id;
  }
  size_t index;
  json_t *item;
  json_array_foreach(added_tokens, index, item) {
    const char *content = json_string_value(json_object_get(item, "content"));
    if (!content)
      return clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: added_tokens[%zu] has no content string", path, index);
    if (json_is_true(json_object_get(item, "single_word")))
      return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "%s: added token \"%s\" has single_word true, which is not supported",
                        path, content);
    int32_t id;
    CLTTT_TRY(read_id(path, json_object_get(item, "id"), "added token", content, &id));
    if (id > highest)
      highest = id;
  }
  if (highest < 0)
    return clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: empty vocabulary", path);

  tok->vocab_size = highest + 1;
  tok->tokens = calloc((size_t)tok->vocab_size, sizeof *tok->tokens);
  if (!tok->tokens)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: out of memory for %d tokens", path, tok->vocab_size);

  size_t vocabulary_count = 0;
  json_object_foreach(vocabulary, key, value) {
    int32_t id = (int32_t)json_integer_value(value);
    token_entry *entry = &tok->tokens[id];
    if (entry->flags & TOKEN_PRESENT)
      continue; /* two strings for one id: keep one, as a vocabulary can only decode to one */
    size_t length = strlen(key);
    entry->bytes = malloc(length + 1);
    if (!entry->bytes)
      return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: out of memory", path);
    entry->length = (int32_t)unmap_byte_level(key, length, entry->bytes);
    entry->bytes[entry->length] = '\0';
    entry->flags = TOKEN_PRESENT | TOKEN_IN_VOCAB;
    vocabulary_count++;
  }

  /* Added tokens decode to their content as written, not byte-unmapped. */
  int added_count = (int)json_array_size(added_tokens);
  if (added_count > 0) {
    tok->added = calloc((size_t)added_count, sizeof *tok->added);
    if (!tok->added)
      return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: out of memory", path);
  }
  json_array_foreach(added_tokens, index, item) {
    const char *content = json_string_value(json_object_get(item, "content"));
    int32_t id = (int32_t)json_integer_value(json_object_get(item, "id"));
    size_t length = strlen(content);
    token_entry *entry = &tok->tokens[id];
    if (entry->flags & TOKEN_ADDED)
      continue; /* listed twice: the first entry already points at these bytes */
    unsigned char *bytes = copy_bytes(content, length);
    if (!bytes)
      return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: out of memory", path);
    free(entry->bytes);
    entry->bytes = bytes;
    entry->length = (int32_t)length;
    entry->flags |= TOKEN_PRESENT | TOKEN_ADDED;
    if (json_is_true(json_object_get(item, "special")))
      entry->flags |= TOKEN_SPECIAL;
    if (length == 0)
      continue; /* an empty token can never match */
    added_token *added = &tok->added[tok->added_count++];
    added->id = id;
    added->content = entry->bytes;
    added->length = (int32_t)length;
    added->lstrip = json_is_true(json_object_get(item, "lstrip"));
    added->rstrip = json_is_true(json_object_get(item, "rstrip"));
    added->normalized = json_is_true(json_object_get(item, "normalized"));
    if (added->lstrip || added->rstrip)
      if (!tok->space_code)
        CLTTT_TRY(compile_pattern(&tok->space_code, path, "\\s", 0));
  }

  CLTTT_TRY(string_map_init(&tok->pieces, vocabulary_count));
  for (int32_t id = 0; id < tok->vocab_size; id++)
    if (tok->tokens[id].flags & TOKEN_IN_VOCAB)
      string_map_insert(&tok->pieces, tok->tokens[id].bytes, (size_t)tok->tokens[id].length, id);
  return CLTTT_SUCCESS;
}

static int compare_added(const void *a, const void *b) {
  const added_token *left = a, *right = b;
  if (left->normalized != right->normalized)
    return left->normalized - right->normalized;
  if (left->content[0] != right->content[0])
    return left->content[0] - right->content[0];
  if (left->length != right->length)
    return right->length - left->length; /* longest first: leftmost-longest matching */
  return left->id - right->id;
}

static void index_added_tokens(clttt_tokenizer *tok) {
  /* Without added tokens tok->added is NULL, which qsort may not be given
   * even for zero elements. */
  if (tok->added_count > 0)
    qsort(tok->added, (size_t)tok->added_count, sizeof *tok->added, compare_added);
  /* added_bucket[n][b] .. added_bucket[n][b + 1] is the range starting with byte b. */
  for (int normalized = 0; normalized < 2; normalized++) {
    int position = 0;
    for (int byte = 0; byte <= 256; byte++) {
      while (position < tok->added_count &&
             (tok->added[position].normalized < normalized ||
              (tok->added[position].normalized == normalized && tok->added[position].content[0] < byte)))
        position++;
      tok->added_bucket[normalized][byte] = position;
    }
  }
}

static int split_merge(const char *path, json_t *merge, size_t index, char **left, char **right) {
  if (json_is_string(merge)) {
    const char *text = json_string_value(merge);
    const char *space = strchr(text, ' ');
    if (!space || strchr(space + 1, ' '))
      return clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: merges[%zu] \"%s\" is not two tokens separated by one space",
                        path, index, text);
    *left = (char *)copy_bytes(text, (size_t)(space - text));
    *right = (char *)copy_bytes(space + 1, strlen(space + 1));
  } else if (json_is_array(merge) && json_array_size(merge) == 2 && json_is_string(json_array_get(merge, 0)) &&
             json_is_string(json_array_get(merge, 1))) {
    const char *first = json_string_value(json_array_get(merge, 0));
    const char *second = json_string_value(json_array_get(merge, 1));
    *left = (char *)copy_bytes(first, strlen(first));
    *right = (char *)copy_bytes(second, strlen(second));
  } else {
    return clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", path, index);
  }
  if (!*left || !*right) {
    free(*left);
    free(*right);
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: out of memory", path);
  }
  return CLTTT_SUCCESS;
}

static int load_merges(clttt_tokenizer *tok, const char *path, json_t *model) {
  json_t *merges = json_object_get(model, "merges");
  if (!json_is_array(merges))
    return clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: model.merges is missing or not an array", path);
  size_t count = json_array_size(merges);
  if (count >= (size_t)MAX_TOKEN_ID)
    return clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: %zu merges", path, count);
  CLTTT_TRY(pair_map_init(&tok->merges, count));
  for (size_t index = 0; index < count; index++) {
    char *left = NULL, *right = NULL;
    CLTTT_TRY(split_merge(path, json_array_get(merges, index), index, &left, &right));
    size_t left_length = strlen(left), right_length = strlen(right);
    unsigned char *scratch = malloc(left_length + right_length + 1);
    if (!scratch) {
      free(left);
      free(right);
      return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: out of memory", path);
    }
    int32_t left_id = find_mapped_piece(tok, left, scratch);
    int32_t right_id = find_mapped_piece(tok, right, scratch);
    int32_t merged_id = -1;
    if (left_id >= 0 && right_id >= 0) {
      const token_entry *a = &tok->tokens[left_id], *b = &tok->tokens[right_id];
      memcpy(scratch, a->bytes, (size_t)a->length);
      memcpy(scratch + a->length, b->bytes, (size_t)b->length);
      merged_id = string_map_find(&tok->pieces, scratch, (size_t)(a->length + b->length));
    }
    free(scratch);
    if (left_id < 0 || right_id < 0 || merged_id < 0) {
      int status = clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: merges[%zu] \"%s\" + \"%s\": %s is not in the vocabulary",
                              path, index, left, right,
                              left_id < 0 ? "the left token" : right_id < 0 ? "the right token" : "the merged token");
      free(left);
      free(right);
      return status;
    }
    free(left);
    free(right);
    pair_map_insert(&tok->merges, left_id, right_id, (int32_t)index, merged_id);
  }
  return CLTTT_SUCCESS;
}

static int check_model(const char *path, json_t *model) {
  if (!json_is_object(model))
    return clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: \"model\" is missing or not an object", path);
  json_t *type = json_object_get(model, "type");
  /* Old files omit the type of a BPE model; merges identify it. */
  if (!type && json_object_get(model, "merges"))
    return CLTTT_SUCCESS;
  const char *name = json_is_string(type) ? json_string_value(type) : "(no type)";
  if (strcmp(name, "BPE") != 0)
    return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "%s: model type \"%s\" is not supported (only BPE)", path, name);
  json_t *dropout = json_object_get(model, "dropout");
  if (json_is_number(dropout) && json_number_value(dropout) > 0)
    return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "%s: BPE dropout %g is not supported", path, json_number_value(dropout));
  const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
  for (int i = 0; i < 2; i++) {
    const char *affix = json_string_value(json_object_get(model, affixes[i]));
    if (affix && affix[0])
      return clttt_fail(CLTTT_ERROR_UNSUPPORTED, "%s: BPE %s \"%s\" is not supported", path, affixes[i], affix);
  }
  return CLTTT_SUCCESS;
}

/* A special token given as "text", {"content": "text"} or null. Returns 1
 * when `value` decided the answer (possibly -1), 0 when it is absent. */
static int resolve_special(const clttt_tokenizer *tok, json_t *value, int32_t *id) {
  if (!value)
    return 0;
  if (json_is_null(value)) {
    *id = -1;
    return 1;
  }
  const char *text = json_is_string(value) ? json_string_value(value)
                                           : json_string_value(json_object_get(value, "content"));
  if (!text)
    return 0;
  *id = clttt_tokenizer_token_to_id(tok, text);
  return 1;
}

static int32_t first_known(const clttt_tokenizer *tok, const char *const *names) {
  for (; *names; names++) {
    int32_t id = clttt_tokenizer_token_to_id(tok, *names);
    if (id >= 0)
      return id;
  }
  return -1;
}

/* The first SpecialToken of a TemplateProcessing's "single" template is the
 * token HuggingFace prepends: the BOS. */
static int32_t template_bos(const clttt_tokenizer *tok, json_t *processor) {
  if (!processor)
    return -1;
  const char *type = json_type_name(processor);
  if (strcmp(type, "Sequence") == 0) {
    size_t index;
    json_t *item;
    json_array_foreach(json_object_get(processor, "processors"), index, item) {
      int32_t id = template_bos(tok, item);
      if (id >= 0)
        return id;
    }
    return -1;
  }
  if (strcmp(type, "TemplateProcessing") != 0)
    return -1;
  json_t *first = json_array_get(json_object_get(processor, "single"), 0);
  const char *name = json_string_value(json_object_get(json_object_get(first, "SpecialToken"), "id"));
  return name ? clttt_tokenizer_token_to_id(tok, name) : -1;
}

static int resolve_bos_eos(clttt_tokenizer *tok, const char *model_dir, json_t *root) {
  static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "<bos>", NULL};
  static const char *const eos_names[] = {"<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>", "<|im_end|>", NULL};
  int bos_known = 0, eos_known = 0;
  char *config_path = join_path(model_dir, "tokenizer_config.json");
  if (!config_path)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
  struct stat info;
  if (stat(config_path, &info) == 0) {
    json_t *config = NULL;
    int status = load_json_file(config_path, FILE_CAP_TOKENIZER_CONFIG, "a tokenizer_config.json", &config);
    if (status == CLTTT_SUCCESS && !json_is_object(config))
      status = clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: not a JSON object", config_path);
    if (status != CLTTT_SUCCESS) {
      json_decref(config);
      free(config_path);
      return status;
    }
    bos_known = resolve_special(tok, json_object_get(config, "bos_token"), &tok->bos);
    eos_known = resolve_special(tok, json_object_get(config, "eos_token"), &tok->eos);
    json_decref(config);
  }
  free(config_path);
  if (!bos_known) {
    tok->bos = template_bos(tok, json_object_get(root, "post_processor"));
    if (tok->bos < 0)
      tok->bos = first_known(tok, bos_names);
  }
  if (!eos_known)
    tok->eos = first_known(tok, eos_names);
  return CLTTT_SUCCESS;
}

static int load_json(clttt_tokenizer *tok, const char *path, const char *model_dir) {
  json_t *root = NULL;
  int status = load_json_file(path, FILE_CAP_TOKENIZER_JSON, "a tokenizer.json", &root);
  if (status != CLTTT_SUCCESS)
    return status;
  if (!json_is_object(root)) {
    status = clttt_fail(CLTTT_ERROR_BAD_TOKENIZER, "%s: not a JSON object", path);
    goto done;
  }
  json_t *model = json_object_get(root, "model");
  tok->kind = TOKENIZER_BPE;
  if ((status = check_model(path, model)) != CLTTT_SUCCESS ||
      (status = check_normalizer(path, json_object_get(root, "normalizer"))) != CLTTT_SUCCESS ||
      (status = parse_pre_tokenizer(tok, path, json_object_get(root, "pre_tokenizer"))) != CLTTT_SUCCESS ||
      (status = check_decoder(path, json_object_get(root, "decoder"))) != CLTTT_SUCCESS ||
      (status = load_vocabulary(tok, path, model, json_object_get(root, "added_tokens"))) != CLTTT_SUCCESS ||
      (status = load_merges(tok, path, model)) != CLTTT_SUCCESS)
    goto done;
  index_added_tokens(tok);
  tok->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
  tok->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
  const char *unknown = json_string_value(json_object_get(model, "unk_token"));
  if (unknown)
    tok->unknown_id = clttt_tokenizer_token_to_id(tok, unknown);
  for (int byte = 0; byte < 256; byte++) {
    unsigned char single = (unsigned char)byte;
    tok->byte_ids[byte] = string_map_find(&tok->pieces, &single, 1);
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", byte);
    tok->byte_fallback_ids[byte] = find_piece(tok, name);
  }
  status = resolve_bos_eos(tok, model_dir, root);
done:
  json_decref(root);
  return status;
}

/* ------------------------------------------------------------------ */
/* Loading                                                              */

/* Lexicographically first tok*.bin, so the choice does not depend on the
 * order readdir happens to return. NULL with *status set when none. */
static char *find_llama2c_file(const char *model_dir, int *status) {
  DIR *directory = opendir(model_dir);
  if (!directory) {
    *status = clttt_fail(CLTTT_ERROR_IO, "tokenizer: cannot open model directory %s: %s", model_dir, strerror(errno));
    return NULL;
  }
  char *best = NULL;
  struct dirent *entry;
  while ((entry = readdir(directory)) != NULL) {
    size_t length = strlen(entry->d_name);
    if (length < 7 || strncmp(entry->d_name, "tok", 3) != 0 || strcmp(entry->d_name + length - 4, ".bin") != 0)
      continue;
    if (best && strcmp(entry->d_name, best) >= 0)
      continue;
    char *copy = (char *)copy_bytes(entry->d_name, length);
    if (!copy) {
      free(best);
      closedir(directory);
      *status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
      return NULL;
    }
    free(best);
    best = copy;
  }
  closedir(directory);
  if (!best) {
    *status = clttt_fail(CLTTT_ERROR_IO, "tokenizer: model directory %s has neither tokenizer.json nor a tok*.bin file",
                         model_dir);
    return NULL;
  }
  char *path = join_path(model_dir, best);
  free(best);
  if (!path)
    *status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
  return path;
}

clttt_status clttt_tokenizer_load(clttt_tokenizer **out, const char *model_dir) {
  if (!out || !model_dir)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_tokenizer_load: NULL argument");
  *out = NULL;
  char *path = join_path(model_dir, "tokenizer.json");
  if (!path)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
  int status = CLTTT_SUCCESS;
  struct stat info;
  int is_json = stat(path, &info) == 0;
  if (!is_json) {
    if (errno != ENOENT && errno != ENOTDIR) {
      status = clttt_fail(CLTTT_ERROR_IO, "%s: %s", path, strerror(errno));
      free(path);
      return status;
    }
    free(path);
    path = find_llama2c_file(model_dir, &status);
    if (!path)
      return status;
  }
  clttt_tokenizer *tok = tokenizer_new(path);
  if (!tok) {
    free(path);
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory");
  }
  status = is_json ? load_json(tok, path, model_dir) : load_llama2c(tok, path);
  free(path);
  if (status != CLTTT_SUCCESS) {
    clttt_tokenizer_free(tok);
    return status;
  }
  *out = tok;
  return CLTTT_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                             */

typedef struct {
  int32_t id;
  int32_t previous, next;
  int32_t start, length; /* span of the working text; length 0 once merged away */
  uint8_t mergeable;
} bpe_symbol;

typedef struct {
  double priority; /* lower merges first: BPE rank, or minus llama2.c score */
  int32_t left;    /* symbol index: ties go to the leftmost pair */
  int32_t left_id, right_id, merged_id;
} merge_candidate;

typedef struct {
  const clttt_tokenizer *tok;
  id_vector ids;
  pcre2_match_data *match;
  bpe_symbol *symbols;
  size_t symbol_capacity;
  merge_candidate *heap;
  size_t heap_count, heap_capacity;
  byte_buffer prefixed; /* a piece with ByteLevel's prefix space */
} encoder;

static int candidate_before(const merge_candidate *a, const merge_candidate *b) {
  return a->priority < b->priority || (a->priority == b->priority && a->left < b->left);
}

static int heap_push(encoder *state, const merge_candidate *candidate) {
  if (state->heap_count == state->heap_capacity) {
    size_t capacity = state->heap_capacity ? state->heap_capacity * 2 : 64;
    merge_candidate *heap = realloc(state->heap, capacity * sizeof *heap);
    if (!heap)
      return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory for merge candidates");
    state->heap = heap;
    state->heap_capacity = capacity;
  }
  size_t child = state->heap_count++;
  while (child > 0) {
    size_t parent = (child - 1) / 2;
    if (!candidate_before(candidate, &state->heap[parent]))
      break;
    state->heap[child] = state->heap[parent];
    child = parent;
  }
  state->heap[child] = *candidate;
  return CLTTT_SUCCESS;
}

static merge_candidate heap_pop(encoder *state) {
  merge_candidate top = state->heap[0];
  merge_candidate last = state->heap[--state->heap_count];
  size_t parent = 0, count = state->heap_count;
  for (;;) {
    size_t child = parent * 2 + 1;
    if (child >= count)
      break;
    if (child + 1 < count && candidate_before(&state->heap[child + 1], &state->heap[child]))
      child++;
    if (!candidate_before(&state->heap[child], &last))
      break;
    state->heap[parent] = state->heap[child];
    parent = child;
  }
  if (count > 0)
    state->heap[parent] = last;
  return top;
}

/* Queues the merge of symbol `left` with its right neighbour, if any. */
static int queue_pair(encoder *state, const unsigned char *text, int32_t left) {
  const bpe_symbol *a = &state->symbols[left];
  if (a->next < 0)
    return CLTTT_SUCCESS;
  const bpe_symbol *b = &state->symbols[a->next];
  merge_candidate candidate = {.left = left, .left_id = a->id, .right_id = b->id};
  if (state->tok->kind == TOKENIZER_BPE) {
    const pair_slot *merge = pair_map_find(&state->tok->merges, a->id, b->id);
    if (!merge)
      return CLTTT_SUCCESS;
    candidate.priority = merge->rank;
    candidate.merged_id = merge->merged_id;
  } else {
    /* llama2.c merges by string: adjacent symbols are adjacent spans, so
     * their concatenation is a slice of the working text. */
    if (!a->mergeable || !b->mergeable)
      return CLTTT_SUCCESS;
    int32_t merged = string_map_find(&state->tok->pieces, text + a->start, (size_t)(a->length + b->length));
    if (merged < 0)
      return CLTTT_SUCCESS;
    candidate.priority = -(double)state->tok->tokens[merged].score;
    candidate.merged_id = merged;
  }
  return heap_push(state, &candidate);
}

static int reserve_symbols(encoder *state, size_t count) {
  if (count <= state->symbol_capacity)
    return CLTTT_SUCCESS;
  size_t capacity = state->symbol_capacity ? state->symbol_capacity : 64;
  while (capacity < count)
    capacity *= 2;
  bpe_symbol *symbols = realloc(state->symbols, capacity * sizeof *symbols);
  if (!symbols)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory for %zu symbols", capacity);
  state->symbols = symbols;
  state->symbol_capacity = capacity;
  return CLTTT_SUCCESS;
}

static void add_symbol(encoder *state, int32_t *count, int32_t id, int32_t start, int32_t length, int mergeable) {
  bpe_symbol *symbol = &state->symbols[*count];
  symbol->id = id;
  symbol->start = start;
  symbol->length = length;
  symbol->mergeable = (uint8_t)mergeable;
  symbol->previous = *count - 1;
  symbol->next = -1;
  if (*count > 0)
    state->symbols[*count - 1].next = *count;
  (*count)++;
}

/* Repeatedly applies the best queued merge (lowest priority, leftmost on
 * ties) and emits the final symbols. A popped candidate is stale when either
 * symbol has since been merged: merging always yields a longer string and
 * so a different id, which the id check catches. */
static int merge_and_emit(encoder *state, const unsigned char *text, int32_t count) {
  if (count == 0)
    return CLTTT_SUCCESS;
  state->heap_count = 0;
  for (int32_t i = 0; i + 1 < count; i++)
    CLTTT_TRY(queue_pair(state, text, i));
  while (state->heap_count > 0) {
    merge_candidate best = heap_pop(state);
    bpe_symbol *left = &state->symbols[best.left];
    if (left->length == 0 || left->next < 0 || left->id != best.left_id)
      continue;
    bpe_symbol *right = &state->symbols[left->next];
    if (right->id != best.right_id)
      continue;
    left->id = best.merged_id;
    left->length += right->length;
    left->next = right->next;
    if (right->next >= 0)
      state->symbols[right->next].previous = best.left;
    right->length = 0;
    if (left->previous >= 0)
      CLTTT_TRY(queue_pair(state, text, left->previous));
    CLTTT_TRY(queue_pair(state, text, best.left));
  }
  for (int32_t i = 0; i >= 0; i = state->symbols[i].next)
    CLTTT_TRY(id_vector_push(&state->ids, state->symbols[i].id));
  return CLTTT_SUCCESS;
}

/* Byte-level BPE of one pre-token. */
static int encode_word(encoder *state, const unsigned char *word, size_t length) {
  const clttt_tokenizer *tok = state->tok;
  if (length == 0)
    return CLTTT_SUCCESS;
  if (length > (size_t)INT32_MAX / 2)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "tokenizer: a %zu-byte word is too long", length);
  /* LLaMA-3's ignore_merges: a word that is itself a token stays whole even
   * where the merge order would split it differently. */
  if (tok->ignore_merges) {
    int32_t whole = string_map_find(&tok->pieces, word, length);
    if (whole >= 0)
      return id_vector_push(&state->ids, whole);
  }
  CLTTT_TRY(reserve_symbols(state, length));
  int32_t count = 0;
  for (size_t i = 0; i < length; i++) {
    int32_t id = tok->byte_ids[word[i]];
    if (id < 0 && tok->byte_fallback)
      id = tok->byte_fallback_ids[word[i]];
    if (id < 0)
      id = tok->unknown_id;
    if (id < 0)
      continue; /* no unk token: HuggingFace drops the character too */
    add_symbol(state, &count, id, (int32_t)i, 1, 1);
  }
  return merge_and_emit(state, word, count);
}

/* Splits [text, text + length) with stage `stage` and passes every piece,
 * matched or not (HuggingFace's Isolated behavior), to the next stage. */
static int pre_tokenize(encoder *state, int stage, const unsigned char *text, size_t length) {
  const clttt_tokenizer *tok = state->tok;
  if (length == 0)
    return CLTTT_SUCCESS;
  if (stage == tok->prefix_stage && tok->add_prefix_space && text[0] != ' ') {
    state->prefixed.length = 0;
    CLTTT_TRY(byte_buffer_append(&state->prefixed, (const unsigned char *)" ", 1));
    CLTTT_TRY(byte_buffer_append(&state->prefixed, text, length));
    /* Later stages read only slices of this copy, and the next piece to
     * reach this stage comes after they are done with it. */
    text = state->prefixed.data;
    length = state->prefixed.length;
  }
  if (stage == tok->stage_count)
    return encode_word(state, text, length);
  const pcre2_code *code = tok->stages[stage];
  size_t piece_start = 0;
  while (piece_start < length) {
    int result = pcre2_match(code, text, length, piece_start, PCRE2_NOTEMPTY, state->match, NULL);
    if (result == PCRE2_ERROR_NOMATCH)
      break;
    if (result < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(result, message, sizeof message);
      return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "%s: pre-tokenizer regex failed at byte %zu: %s", tok->origin,
                        piece_start, (const char *)message);
    }
    const PCRE2_SIZE *offsets = pcre2_get_ovector_pointer(state->match);
    size_t match_start = offsets[0], match_end = offsets[1];
    if (match_start > piece_start)
      CLTTT_TRY(pre_tokenize(state, stage + 1, text + piece_start, match_start - piece_start));
    CLTTT_TRY(pre_tokenize(state, stage + 1, text + match_start, match_end - match_start));
    piece_start = match_end;
  }
  if (piece_start < length)
    CLTTT_TRY(pre_tokenize(state, stage + 1, text + piece_start, length - piece_start));
  return CLTTT_SUCCESS;
}

/* Length of the whitespace character at text[position] (0 if not one). */
static size_t space_at(encoder *state, const unsigned char *text, size_t position, size_t end) {
  int result = pcre2_match(state->tok->space_code, text, end, position, PCRE2_ANCHORED, state->match, NULL);
  if (result < 0)
    return 0;
  return pcre2_get_ovector_pointer(state->match)[1] - position;
}

/* Added tokens are found before anything else and never split. Tokens with
 * normalized false are matched first (pass 0) and those with normalized true
 * in what remains (pass 1), as HuggingFace does. At each position the
 * longest token wins; the leftmost position wins overall. */
static int encode_segment(encoder *state, int pass, const unsigned char *text, size_t length) {
  const clttt_tokenizer *tok = state->tok;
  if (pass == 2)
    return pre_tokenize(state, 0, text, length);
  const int *bucket = tok->added_bucket[pass];
  if (bucket[0] == bucket[256])
    return encode_segment(state, pass + 1, text, length);
  size_t segment_start = 0;
  for (size_t position = 0; position < length; position++) {
    int first = bucket[text[position]], last = bucket[text[position] + 1];
    const added_token *found = NULL;
    for (int i = first; i < last; i++) {
      const added_token *candidate = &tok->added[i];
      if ((size_t)candidate->length <= length - position &&
          memcmp(candidate->content, text + position, (size_t)candidate->length) == 0) {
        found = candidate;
        break;
      }
    }
    if (!found)
      continue;
    size_t match_start = position, match_end = position + (size_t)found->length;
    if (found->lstrip) {
      /* Step back over whole whitespace characters. */
      while (match_start > segment_start) {
        size_t previous = match_start - 1;
        while (previous > segment_start && (text[previous] & 0xC0) == 0x80)
          previous--;
        if (space_at(state, text, previous, match_start) != match_start - previous)
          break;
        match_start = previous;
      }
    }
    if (found->rstrip) {
      size_t size;
      while (match_end < length && (size = space_at(state, text, match_end, length)) > 0)
        match_end += size;
    }
    CLTTT_TRY(encode_segment(state, pass + 1, text + segment_start, match_start - segment_start));
    CLTTT_TRY(id_vector_push(&state->ids, found->id));
    segment_start = match_end;
    position = match_end - 1;
  }
  return encode_segment(state, pass + 1, text + segment_start, length - segment_start);
}

/* llama2.c's encode: a dummy-prefix space, then each UTF-8 character as a
 * piece (or its bytes as <0xNN> pieces), then merges by score. The text is
 * one long word, so the heap keeps this O(n log n). */
static int encode_llama2c(encoder *state, const unsigned char *text, size_t length) {
  const clttt_tokenizer *tok = state->tok;
  if (length == 0)
    return CLTTT_SUCCESS;
  if (length > (size_t)INT32_MAX / 2)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "tokenizer: a %zu-byte text is too long", length);
  byte_buffer work = {0};
  int status = byte_buffer_append(&work, (const unsigned char *)" ", 1);
  if (status == CLTTT_SUCCESS)
    status = byte_buffer_append(&work, text, length);
  if (status == CLTTT_SUCCESS)
    status = reserve_symbols(state, length + 1);
  if (status != CLTTT_SUCCESS) {
    free(work.data);
    return status;
  }
  int32_t count = 0;
  if (tok->space_id >= 0)
    add_symbol(state, &count, tok->space_id, 0, 1, 1);
  else
    add_symbol(state, &count, tok->byte_ids[' '], 0, 1, 0);
  /* A character is a byte plus the continuation bytes after it, at most 4
   * bytes: the same grouping as llama2.c, malformed input included. */
  for (size_t i = 1; i < work.length;) {
    size_t size = 1;
    while (i + size < work.length && size < 4 && (work.data[i + size] & 0xC0) == 0x80)
      size++;
    int32_t id = string_map_find(&tok->pieces, work.data + i, size);
    if (id >= 0) {
      add_symbol(state, &count, id, (int32_t)i, (int32_t)size, 1);
    } else {
      for (size_t b = 0; b < size; b++)
        add_symbol(state, &count, tok->byte_ids[work.data[i + b]], (int32_t)(i + b), 1, 0);
    }
    i += size;
  }
  status = merge_and_emit(state, work.data, count);
  free(work.data);
  return status;
}

clttt_status clttt_tokenizer_encode(const clttt_tokenizer *tok, const char *text, int add_bos, int32_t **ids, int *count) {
  if (!tok || !text || !ids || !count)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_tokenizer_encode: NULL argument");
  *ids = NULL;
  *count = 0;
  encoder state = {.tok = tok};
  int status = CLTTT_SUCCESS;
  if (add_bos && tok->bos >= 0)
    status = id_vector_push(&state.ids, tok->bos);
  size_t length = strlen(text);
  if (status == CLTTT_SUCCESS && tok->kind == TOKENIZER_LLAMA2C) {
    status = encode_llama2c(&state, (const unsigned char *)text, length);
  } else if (status == CLTTT_SUCCESS) {
    state.match = pcre2_match_data_create(4, NULL);
    if (!state.match)
      status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory for regex match data");
    else
      status = encode_segment(&state, 0, (const unsigned char *)text, length);
  }
  pcre2_match_data_free(state.match);
  free(state.symbols);
  free(state.heap);
  free(state.prefixed.data);
  if (status != CLTTT_SUCCESS) {
    free(state.ids.data);
    return status;
  }
  *ids = state.ids.data;
  *count = (int)state.ids.count;
  return CLTTT_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Decoding                                                             */

static int append_token(const clttt_tokenizer *tok, byte_buffer *out, int32_t previous, int32_t id) {
  if (id < 0 || id >= tok->vocab_size || !(tok->tokens[id].flags & TOKEN_PRESENT))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "tokenizer: id %d is not in the vocabulary of %s (size %d)", id,
                      tok->origin, tok->vocab_size);
  const token_entry *entry = &tok->tokens[id];
  if (entry->flags & TOKEN_CONTROL)
    return CLTTT_SUCCESS;
  const unsigned char *bytes = entry->bytes;
  size_t length = (size_t)entry->length;
  /* The encoder's dummy-prefix space is not part of the text. */
  if (tok->kind == TOKENIZER_LLAMA2C && previous == tok->bos && !(entry->flags & TOKEN_BYTE) && length > 0 &&
      bytes[0] == ' ') {
    bytes++;
    length--;
  }
  return byte_buffer_append(out, bytes, length);
}

clttt_status clttt_tokenizer_decode(const clttt_tokenizer *tok, const int32_t *ids, int count, char **text) {
  if (!tok || !text || count < 0 || (count > 0 && !ids))
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_tokenizer_decode: NULL argument or negative count");
  *text = NULL;
  byte_buffer out = {0};
  int status = byte_buffer_reserve(&out, 0);
  if (status == CLTTT_SUCCESS)
    out.data[0] = '\0';
  for (int i = 0; i < count && status == CLTTT_SUCCESS; i++)
    status = append_token(tok, &out, i > 0 ? ids[i - 1] : -1, ids[i]);
  if (status != CLTTT_SUCCESS) {
    free(out.data);
    return status;
  }
  *text = (char *)out.data;
  return CLTTT_SUCCESS;
}

struct clttt_tokenizer_stream {
  const clttt_tokenizer *tok;
  int32_t previous;
  unsigned char held[4];
  int held_length;
  byte_buffer out;
};

clttt_status clttt_tokenizer_stream_create(clttt_tokenizer_stream **out, const clttt_tokenizer *tok) {
  if (!out || !tok)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_tokenizer_stream_create: NULL argument");
  clttt_tokenizer_stream *stream = calloc(1, sizeof *stream);
  if (!stream)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "tokenizer: out of memory for a stream");
  stream->tok = tok;
  stream->previous = -1;
  *out = stream;
  return CLTTT_SUCCESS;
}

/* Bytes at the end of `text` that begin a character whose remaining bytes
 * may still come: a lead byte followed by fewer continuation bytes than it
 * announces. */
static int incomplete_tail(const unsigned char *text, size_t length) {
  for (size_t back = 1; back <= 3 && back <= length; back++) {
    unsigned char byte = text[length - back];
    if ((byte & 0xC0) == 0x80)
      continue;
    int needed = byte >= 0xC2 && byte <= 0xDF ? 2 : byte >= 0xE0 && byte <= 0xEF ? 3 : byte >= 0xF0 && byte <= 0xF4 ? 4 : 0;
    return needed > (int)back ? (int)back : 0;
  }
  return 0;
}

clttt_status clttt_tokenizer_stream_put(clttt_tokenizer_stream *stream, int32_t id, const char **text) {
  if (!stream || !text)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_tokenizer_stream_put: NULL argument");
  *text = "";
  byte_buffer *out = &stream->out;
  out->length = 0;
  CLTTT_TRY(byte_buffer_append(out, stream->held, (size_t)stream->held_length));
  int status = append_token(stream->tok, out, stream->previous, id);
  if (status != CLTTT_SUCCESS) {
    out->length = 0;
    out->data[0] = '\0';
    return status;
  }
  stream->previous = id;
  int tail = incomplete_tail(out->data, out->length);
  out->length -= (size_t)tail;
  memcpy(stream->held, out->data + out->length, (size_t)tail);
  stream->held_length = tail;
  out->data[out->length] = '\0';
  *text = (const char *)out->data;
  return CLTTT_SUCCESS;
}

clttt_status clttt_tokenizer_stream_flush(clttt_tokenizer_stream *stream, const char **text) {
  if (!stream || !text)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "clttt_tokenizer_stream_flush: NULL argument");
  stream->out.length = 0;
  CLTTT_TRY(byte_buffer_append(&stream->out, stream->held, (size_t)stream->held_length));
  stream->held_length = 0;
  *text = (const char *)stream->out.data;
  return CLTTT_SUCCESS;
}

void clttt_tokenizer_stream_reset(clttt_tokenizer_stream *stream) {
  if (!stream)
    return;
  stream->previous = -1;
  stream->held_length = 0;
}

void clttt_tokenizer_stream_free(clttt_tokenizer_stream *stream) {
  if (!stream)
    return;
  free(stream->out.data);
  free(stream);
}

/* ------------------------------------------------------------------ */
/* Queries                                                              */

int clttt_tokenizer_bos(const clttt_tokenizer *tok) { return tok ? tok->bos : -1; }
int clttt_tokenizer_eos(const clttt_tokenizer *tok) { return tok ? tok->eos : -1; }
int clttt_tokenizer_vocab_size(const clttt_tokenizer *tok) { return tok ? tok->vocab_size : 0; }

const char *clttt_tokenizer_kind_name(const clttt_tokenizer *tok) {
  return tok && tok->kind == TOKENIZER_LLAMA2C ? "llama2c" : "bpe";
}

int clttt_tokenizer_is_special(const clttt_tokenizer *tok, int32_t id) {
  return tok && id >= 0 && id < tok->vocab_size && (tok->tokens[id].flags & TOKEN_SPECIAL) != 0;
}

int32_t clttt_tokenizer_token_to_id(const clttt_tokenizer *tok, const char *piece) {
  if (!tok || !piece)
    return -1;
  size_t length = strlen(piece);
  for (int i = 0; i < tok->added_count; i++)
    if ((size_t)tok->added[i].length == length && memcmp(tok->added[i].content, piece, length) == 0)
      return tok->added[i].id;
  if (tok->kind == TOKENIZER_LLAMA2C) {
    if (strcmp(piece, "<s>") == 0)
      return tok->bos;
    if (strcmp(piece, "</s>") == 0)
      return tok->eos;
    return find_piece(tok, piece);
  }
  unsigned char *scratch = malloc(length + 1);
  if (!scratch)
    return -1;
  int32_t id = find_mapped_piece(tok, piece, scratch);
  free(scratch);
  return id;
}
