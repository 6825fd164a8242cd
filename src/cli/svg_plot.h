/* A small SVG line chart writer (no dependencies): what 'clttt ruler
 * --plot' draws. */
#ifndef CLTTT_SVG_PLOT_H
#define CLTTT_SVG_PLOT_H

typedef struct {
  const char *name;      /* legend entry */
  const double *values;  /* one per x position; NaN leaves a gap */
  const char *color;     /* any SVG color: "#1f77b4" */
  int dashed;
} svg_series;

/* Writes the chart to `path`. The x positions are evenly spaced categories
 * named by x_labels (context lengths that double read as a log scale); y
 * runs from y_min to y_max. Returns 0, or -1 with errno set when the file
 * cannot be written. */
int svg_line_chart(const char *path, const char *title, const char *x_title, const char *y_title, int point_count,
                   const char *const *x_labels, double y_min, double y_max, int series_count,
                   const svg_series *series);

#endif
