/* Reader of the golden logits files (format in golden.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"

#define GOLDEN_HEADER 24 /* magic, version, n, vocab, ttt */

static uint32_t read_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Whole file into memory; NULL (with a message) when unreadable. */
static unsigned char *slurp(const char *path, size_t *size) {
  FILE *file = fopen(path, "rb");
  if (!file) {
    fprintf(stderr, "golden %s: cannot open: %s\n", path, strerror(errno));
    return NULL;
  }
  size_t capacity = 1 << 16, length = 0;
  unsigned char *data = malloc(capacity);
  while (data) {
    length += fread(data + length, 1, capacity - length, file);
    if (length < capacity)
      break;
    capacity *= 2;
    unsigned char *grown = realloc(data, capacity);
    if (!grown) {
      free(data);
      data = NULL;
    } else {
      data = grown;
    }
  }
  const int failed = ferror(file);
  fclose(file);
  if (!data || failed) {
    fprintf(stderr, "golden %s: %s\n", path, data ? "read error" : "out of memory");
    free(data);
    return NULL;
  }
  *size = length;
  return data;
}

int golden_read(golden *g, const char *path) {
  if (!g || !path) {
    fprintf(stderr, "golden_read: NULL argument\n");
    return -1;
  }
  memset(g, 0, sizeof *g);
  size_t size = 0;
  unsigned char *data = slurp(path, &size);
  if (!data)
    return -1;
  const char *problem = NULL;
  uint32_t version = 0, n = 0, vocab = 0, ttt = 0;
  size_t name_length = 0;
  if (size < GOLDEN_HEADER || memcmp(data, "CLTTTGLD", 8) != 0) {
    problem = "not a golden file (bad magic or too short)";
  } else {
    version = read_u32(data + 8);
    n = read_u32(data + 12);
    vocab = read_u32(data + 16);
    ttt = read_u32(data + 20);
    if (version != 1)
      problem = "unsupported version";
    else if (n == 0 || n > (1u << 24) || vocab == 0 || vocab > (1u << 24))
      problem = "implausible n or vocab";
    else if (ttt > 1)
      problem = "ttt flag is neither 0 nor 1";
  }
  size_t payload = 0;
  if (!problem) {
    /* n, vocab < 2^24: no overflow in size_t of 64 bits, checked for 32 */
    const unsigned long long bytes =
        4ULL * n + 4ULL * (unsigned long long)n * (unsigned long long)vocab;
    if (bytes > (unsigned long long)(size - GOLDEN_HEADER)) {
      problem = "truncated (fewer bytes than n and vocab need)";
    } else {
      payload = (size_t)bytes;
      name_length = size - GOLDEN_HEADER - payload;
      if (name_length == 0 || name_length >= sizeof g->fixture)
        problem = "missing or overlong fixture name";
    }
  }
  if (!problem) {
    const unsigned char *name = data + GOLDEN_HEADER + payload;
    for (size_t i = 0; i < name_length; i++)
      if (!isgraph(name[i]))
        problem = "fixture name has unprintable characters";
    if (!problem) {
      memcpy(g->fixture, name, name_length);
      g->fixture[name_length] = '\0';
    }
  }
  if (!problem) {
    g->tokens = malloc((size_t)n * sizeof *g->tokens);
    g->logits = malloc((size_t)n * vocab * sizeof *g->logits);
    if (!g->tokens || !g->logits)
      problem = "out of memory";
  }
  if (!problem) {
    const unsigned char *p = data + GOLDEN_HEADER;
    for (uint32_t i = 0; i < n && !problem; i++, p += 4) {
      const uint32_t bits = read_u32(p);
      int32_t token;
      memcpy(&token, &bits, sizeof token);
      if (token < 0 || (uint32_t)token >= vocab)
        problem = "token outside the vocabulary";
      g->tokens[i] = token;
    }
    for (size_t i = 0; i < (size_t)n * vocab && !problem; i++, p += 4) {
      const uint32_t bits = read_u32(p);
      memcpy(&g->logits[i], &bits, sizeof bits);
    }
  }
  free(data);
  if (problem) {
    fprintf(stderr, "golden %s: %s\n", path, problem);
    golden_free(g);
    return -1;
  }
  g->n = (int)n;
  g->vocab = (int)vocab;
  g->ttt = (int)ttt;
  return 0;
}

void golden_free(golden *g) {
  if (!g)
    return;
  free(g->tokens);
  free(g->logits);
  memset(g, 0, sizeof *g);
}

char **golden_list(const char *golden_dir, int *count) {
  if (count)
    *count = 0;
  if (!golden_dir || !count) {
    fprintf(stderr, "golden_list: NULL argument\n");
    return NULL;
  }
  char path[4096];
  if (snprintf(path, sizeof path, "%s/index.txt", golden_dir) >= (int)sizeof path) {
    fprintf(stderr, "golden_list: path too long\n");
    return NULL;
  }
  size_t size = 0;
  unsigned char *data = slurp(path, &size);
  if (!data)
    return NULL;
  /* one name per line; blank lines and '#' comments are skipped */
  int capacity = 16, used = 0;
  char **names = malloc((size_t)capacity * sizeof *names);
  size_t start = 0;
  while (names && start < size) {
    size_t end = start;
    while (end < size && data[end] != '\n')
      end++;
    size_t first = start, last = end;
    while (first < last && isspace(data[first]))
      first++;
    while (last > first && isspace(data[last - 1]))
      last--;
    start = end + 1;
    if (first == last || data[first] == '#')
      continue;
    if (used == capacity) {
      capacity *= 2;
      char **grown = realloc(names, (size_t)capacity * sizeof *names);
      if (!grown) {
        golden_free_names(names, used);
        names = NULL;
        break;
      }
      names = grown;
    }
    char *name = malloc(last - first + 1);
    if (!name) {
      golden_free_names(names, used);
      names = NULL;
      break;
    }
    memcpy(name, data + first, last - first);
    name[last - first] = '\0';
    names[used++] = name;
  }
  free(data);
  if (!names) {
    fprintf(stderr, "golden_list %s: out of memory\n", path);
    return NULL;
  }
  *count = used;
  return names;
}

void golden_free_names(char **names, int count) {
  if (!names)
    return;
  for (int i = 0; i < count; i++)
    free(names[i]);
  free(names);
}
