/* RULER's scoring (scripts/eval/synthetic/constants.py and evaluate.py). */
#ifndef CLTTT_RULER_SCORE_H
#define CLTTT_RULER_SCORE_H

/* RULER's postprocess_pred: surrounding whitespace removed, control
 * characters (0x00-0x1f) turned into newlines, whitespace removed again.
 * Returns a malloc'ed string, NULL when out of memory. */
char *ruler_postprocess(const char *prediction);

/* string_match_all for one prediction: the fraction (0 to 1) of the expected
 * strings found in it, ignoring case (ASCII letters; RULER lowercases with
 * Python, which also folds other scripts: our expected strings are ASCII).
 * No expected strings: 0. */
double ruler_match_all(const char *prediction, const char *const *expected, int count);
/* string_match_part (RULER's qa tasks): 1 when any expected string is found. */
double ruler_match_part(const char *prediction, const char *const *expected, int count);

/* A task's score from the sum of its samples' fractions: the mean x 100,
 * rounded to two decimals as RULER rounds it. No samples: NaN. */
double ruler_task_score(double fraction_sum, int count);

#endif
