/* SVG line charts, written by hand: a frame, grid lines, labelled axes,
 * one polyline with markers per series, and a legend. */
#include "svg_plot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>

#define WIDTH 720
#define HEIGHT 440
#define LEFT 70
#define RIGHT 190
#define TOP 50
#define BOTTOM 60

/* Text content with XML's special characters escaped. */
static void put_escaped(FILE *file, const char *text) {
  for (; text && *text; text++) {
    switch (*text) {
    case '&': fputs("&amp;", file); break;
    case '<': fputs("&lt;", file); break;
    case '>': fputs("&gt;", file); break;
    case '"': fputs("&quot;", file); break;
    default: fputc(*text, file); break;
    }
  }
}

int svg_line_chart(const char *path, const char *title, const char *x_title, const char *y_title, int point_count,
                   const char *const *x_labels, double y_min, double y_max, int series_count,
                   const svg_series *series) {
  FILE *file = fopen(path, "w");
  if (!file)
    return -1;
  const double plot_width = WIDTH - LEFT - RIGHT, plot_height = HEIGHT - TOP - BOTTOM;
  const double span = y_max > y_min ? y_max - y_min : 1.0;
#define X(i) (LEFT + (point_count > 1 ? plot_width * (i) / (point_count - 1) : plot_width / 2))
#define Y(v) (TOP + plot_height * (1.0 - ((v) - y_min) / span))
  fprintf(file,
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
          "font-family=\"sans-serif\" font-size=\"12\">\n"
          "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
          WIDTH, HEIGHT, WIDTH, HEIGHT);
  fprintf(file, "<text x=\"%d\" y=\"28\" font-size=\"15\" text-anchor=\"middle\">", (LEFT + WIDTH - RIGHT) / 2);
  put_escaped(file, title);
  fputs("</text>\n", file);
  for (int tick = 0; tick <= 5; tick++) {
    double value = y_min + span * tick / 5.0;
    fprintf(file,
            "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n"
            "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
            LEFT, Y(value), WIDTH - RIGHT, Y(value), LEFT - 8, Y(value) + 4, value);
  }
  for (int i = 0; i < point_count; i++) {
    fprintf(file, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#eeeeee\"/>\n", X(i), TOP, X(i),
            HEIGHT - BOTTOM);
    fprintf(file, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", X(i), HEIGHT - BOTTOM + 18);
    put_escaped(file, x_labels[i]);
    fputs("</text>\n", file);
  }
  fprintf(file, "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"black\"/>\n", LEFT, TOP,
          plot_width, plot_height);
  fprintf(file, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", LEFT + plot_width / 2, HEIGHT - 18);
  put_escaped(file, x_title);
  fprintf(file, "</text>\n<text x=\"18\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 18 %.1f)\">",
          TOP + plot_height / 2, TOP + plot_height / 2);
  put_escaped(file, y_title);
  fputs("</text>\n", file);
  for (int s = 0; s < series_count; s++) {
    const svg_series *line = &series[s];
    const char *dash = line->dashed ? " stroke-dasharray=\"6 4\"" : "";
    /* A NaN breaks the line: each run of present values is one polyline. */
    int open = 0;
    for (int i = 0; i < point_count; i++) {
      if (isnan(line->values[i])) {
        if (open)
          fputs("\"/>\n", file);
        open = 0;
        continue;
      }
      if (!open)
        fprintf(file, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", line->color, dash);
      fprintf(file, "%s%.1f,%.1f", open ? " " : "", X(i), Y(line->values[i]));
      open = 1;
    }
    if (open)
      fputs("\"/>\n", file);
    for (int i = 0; i < point_count; i++)
      if (!isnan(line->values[i]))
        fprintf(file, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", X(i), Y(line->values[i]),
                line->color);
    const int legend_y = TOP + 10 + 20 * s;
    fprintf(file,
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"%s/>\n"
            "<text x=\"%d\" y=\"%d\">",
            WIDTH - RIGHT + 15, legend_y, WIDTH - RIGHT + 45, legend_y, line->color, dash, WIDTH - RIGHT + 52,
            legend_y + 4);
    put_escaped(file, line->name);
    fputs("</text>\n", file);
  }
  fputs("</svg>\n", file);
#undef X
#undef Y
  int failed = ferror(file);
  if (fclose(file) != 0 || failed) {
    if (!errno)
      errno = EIO;
    return -1;
  }
  return 0;
}
