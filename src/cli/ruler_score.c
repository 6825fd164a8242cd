/* RULER's string-match scoring. */
#include "ruler_score.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Python's str.strip() on ASCII whitespace (and the separators 0x1c-0x1f,
 * which str.strip() also removes), in place. */
static char *strip(char *text) {
  while (*text && (is_space(*text) || (*text >= 0x1c && *text <= 0x1f)))
    text++;
  size_t length = strlen(text);
  while (length > 0 && (is_space(text[length - 1]) || (text[length - 1] >= 0x1c && text[length - 1] <= 0x1f)))
    text[--length] = '\0';
  return text;
}

char *ruler_postprocess(const char *prediction) {
  char *copy = malloc(strlen(prediction) + 1);
  if (!copy)
    return NULL;
  strcpy(copy, prediction);
  char *text = strip(copy);
  for (char *c = text; *c; c++)
    if ((unsigned char)*c < 0x20)
      *c = '\n';
  text = strip(text);
  memmove(copy, text, strlen(text) + 1);
  return copy;
}

/* Case-insensitive (ASCII) substring test. */
static int contains(const char *haystack, const char *needle) {
  size_t n = strlen(needle);
  if (n == 0)
    return 1;
  for (; *haystack; haystack++) {
    size_t i = 0;
    while (i < n && haystack[i] && tolower((unsigned char)haystack[i]) == tolower((unsigned char)needle[i]))
      i++;
    if (i == n)
      return 1;
  }
  return 0;
}

double ruler_match_all(const char *prediction, const char *const *expected, int count) {
  if (count <= 0)
    return 0.0;
  int found = 0;
  for (int i = 0; i < count; i++)
    found += contains(prediction, expected[i]);
  return (double)found / count;
}

double ruler_match_part(const char *prediction, const char *const *expected, int count) {
  for (int i = 0; i < count; i++)
    if (contains(prediction, expected[i]))
      return 1.0;
  return 0.0;
}

double ruler_task_score(double fraction_sum, int count) {
  if (count <= 0)
    return NAN;
  const double sum = fraction_sum;
  /* rint rounds ties to even, as Python's round does on exact ties. */
  return rint(sum / count * 100.0 * 100.0) / 100.0;
}
