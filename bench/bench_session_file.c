/* Session files at the size of the bench_model synthetic model (d=512,
 * f=1536, 36 layers, TTT in 7): save, load and fork of a session with a
 * few thousand tokens in its KV cache and a chunk half-full of pending TTT
 * rows. Reports GB/s of file bytes (save: download + XXH3-64 + write +
 * fsync + rename; load: read + XXH3-64 + upload; from the disk with the
 * file's pages dropped, and from the page cache), the same disk's own
 * speed for the same bytes in the same run (a direct write + fsync, a
 * read with the pages dropped), and the file's size against the bytes of
 * state it carries. */
#define _GNU_SOURCE /* O_DIRECT */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"
#include "session.h"

/* Drops the file's pages from the page cache, so that the next read comes
 * from the disk (the pages are clean after a save's fsync). */
static void drop_pages(const char *path) {
  int fd = open(path, O_RDONLY);
  if (fd >= 0) {
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
}

/* The disk on its own: `bytes` written in 16 MiB pieces with O_DIRECT
 * (plain writes where the file system refuses it) and fsynced, then read
 * back with the pages dropped. Seconds of each, or 0 when it failed. */
static void disk_speed(const char *path, size_t bytes, double *write_seconds, double *read_seconds) {
  const size_t piece = (size_t)16 << 20;
  *write_seconds = *read_seconds = 0;
  unsigned char *buffer = aligned_alloc(4096, piece);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0600);
  if (fd < 0)
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (!buffer || fd < 0) {
    free(buffer);
    if (fd >= 0)
      close(fd);
    return;
  }
  for (size_t i = 0; i < piece; i++)
    buffer[i] = (unsigned char)(i * 2654435761u >> 13);
  int ok = 1;
  double start = now_seconds();
  for (size_t done = 0; ok && done < bytes; done += piece)
    ok = pwrite(fd, buffer, piece, (off_t)done) == (ssize_t)piece;
  ok = ok && fsync(fd) == 0;
  close(fd);
  if (ok)
    *write_seconds = now_seconds() - start;
  drop_pages(path);
  fd = open(path, O_RDONLY);
  start = now_seconds();
  for (size_t done = 0; ok && fd >= 0 && done < bytes; done += piece)
    ok = read(fd, buffer, piece) == (ssize_t)piece;
  if (ok && fd >= 0)
    *read_seconds = now_seconds() - start;
  if (fd >= 0)
    close(fd);
  unlink(path);
  free(buffer);
}

static void help(void) {
  printf("usage: bench_session_file [--quick] [--device SEL] [--tokens N] [--repeats N] [--dir DIR]\n"
         "Save / load / fork of a session of the bench_model synthetic model\n"
         "(d=512, f=1536, 36 layers, 7 TTT layers, C=512) holding N tokens.\n"
         "  --quick       d=256, f=768, C=256, 1100 tokens\n"
         "  --tokens N    tokens fed before saving (default 4396: 8 chunks and 300 pending rows)\n"
         "  --repeats N   runs of each operation; the fastest counts (default 3)\n"
         "  --dir DIR     where the file is written (default $TMPDIR or /tmp)\n");
}

static int check(int status, const char *what) {
  if (status != CLTTT_SUCCESS)
    fprintf(stderr, "bench_session_file: %s: %s: %s\n", what, clttt_status_name(status), clttt_last_error());
  return status == CLTTT_SUCCESS;
}

int main(int argc, char **argv) {
  const char *selector = NULL, *dir = getenv("TMPDIR");
  int quick = 0, tokens = 0, repeats = 3;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      quick = 1;
    else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
      selector = argv[++i];
    else if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc)
      tokens = atoi(argv[++i]);
    else if (strcmp(argv[i], "--repeats") == 0 && i + 1 < argc)
      repeats = atoi(argv[++i]);
    else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
      dir = argv[++i];
    else {
      help();
      return strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  const int d = quick ? 256 : 512, f = 3 * d, chunk = quick ? 256 : 512;
  if (tokens <= 0)
    tokens = quick ? 1100 : 8 * chunk + 300;
  if (repeats < 1)
    repeats = 1;
  char path[4096];
  snprintf(path, sizeof path, "%s/bench-session-%d.clttt", dir && dir[0] ? dir : "/tmp", (int)getpid());

  clttt_device *device = NULL;
  if (!check(clttt_device_open(&device, selector), "opening the device"))
    return 1;
  clttt_config config;
  static int ttt_layers[] = {0, 5, 10, 15, 20, 25, 30};
  clttt_synthetic_config(&config, d, f, 36, d / 64, d / 128, 64, 8192, tokens + 64, 0, chunk, 1e-3f);
  config.ttt_mode = 1;
  config.ttt_layers = ttt_layers;
  config.ttt_layer_count = 7;
  clttt_model *model = NULL;
  clttt_session *session = NULL, *loaded = NULL, *fork = NULL;
  int32_t *ids = malloc((size_t)(tokens + 8) * sizeof *ids);
  float *logits_a = malloc((size_t)config.vocab_size * sizeof(float));
  float *logits_b = malloc((size_t)config.vocab_size * sizeof(float));
  int ok = ids && logits_a && logits_b && check(clttt_model_synthetic(&model, device, &config, NULL, 7), "building the model");
  for (int i = 0; ok && i < tokens + 8; i++)
    ids[i] = (int32_t)((i * 7919 + 17) % config.vocab_size);
  clttt_session_params params = clttt_session_default_params();
  params.context = tokens + 64;
  params.logits = CLTTT_LOGITS_LAST;
  ok = ok && check(clttt_session_create(&session, model, &params), "creating the session");
  fprintf(stderr, "bench_session_file: d=%d f=%d, 36 layers, 7 TTT layers, C=%d; feeding %d tokens...\n", d, f,
          chunk, tokens);
  double start = now_seconds();
  ok = ok && check(clttt_session_feed(session, ids, tokens, NULL, 0), "feeding");
  const double feed_seconds = now_seconds() - start;

  /* The first save hashes the weights once; timed on its own. */
  start = now_seconds();
  ok = ok && check(clttt_session_save(session, path), "the first save");
  const double first_save = now_seconds() - start;
  double best_save = 1e30, best_cold = 1e30, best_load = 1e30, best_fork = 1e30;
  double best_disk_write = 1e30, best_disk_read = 1e30;
  char disk_path[4200];
  snprintf(disk_path, sizeof disk_path, "%s.disk", path);
  for (int r = 0; ok && r < repeats; r++) {
    start = now_seconds();
    ok = check(clttt_session_save(session, path), "saving");
    double seconds = now_seconds() - start;
    best_save = seconds < best_save ? seconds : best_save;
    for (int cached = 0; ok && cached < 2; cached++) {
      clttt_session_free(loaded);
      loaded = NULL;
      if (!cached)
        drop_pages(path);
      start = now_seconds();
      ok = ok && check(clttt_session_load(&loaded, model, path, 0), "loading");
      seconds = now_seconds() - start;
      double *best = cached ? &best_load : &best_cold;
      *best = seconds < *best ? seconds : *best;
    }
    struct stat file_info;
    double disk_write = 0, disk_read = 0;
    if (ok && stat(path, &file_info) == 0)
      disk_speed(disk_path, (size_t)file_info.st_size, &disk_write, &disk_read);
    if (disk_write > 0 && disk_write < best_disk_write)
      best_disk_write = disk_write;
    if (disk_read > 0 && disk_read < best_disk_read)
      best_disk_read = disk_read;
    clttt_session_free(fork);
    fork = NULL;
    start = now_seconds();
    ok = ok && check(clttt_session_fork(&fork, session), "forking");
    seconds = now_seconds() - start;
    best_fork = seconds < best_fork ? seconds : best_fork;
  }
  clttt_session_file_info info;
  ok = ok && check(clttt_session_read_info(path, &info), "reading the file's info");
  /* The loaded session continues exactly as the original. */
  int identical = 0;
  if (ok) {
    ok = check(clttt_session_feed(session, ids + tokens, 8, logits_a, 1), "feeding the original") &&
         check(clttt_session_feed(loaded, ids + tokens, 8, logits_b, 1), "feeding the loaded session");
    identical = ok && memcmp(logits_a, logits_b, (size_t)config.vocab_size * sizeof(float)) == 0;
  }
  if (ok) {
    const clttt_device_info *device_info = clttt_device_get_info(device);
    const double file = (double)info.file_bytes, state = (double)info.state_bytes;
    printf("device: %s (%s)\n", device_info->name, device_info->platform);
    printf("model: synthetic d=%d f=%d, 36 layers, 7 TTT layers, C=%d; weights %.1f MiB\n", d, f, chunk,
           (double)clttt_model_weight_bytes(model) / 1048576.0);
    printf("session: %d tokens (fed in %.2f s), %d pending TTT rows\n", tokens, feed_seconds, info.pending);
    printf("file: %.1f MiB for %.1f MiB of state (overhead %.4f%%), %d sections\n", file / 1048576.0,
           state / 1048576.0, 100.0 * (file - state) / state, info.section_count);
    printf("first save (hashes the weights once): %.3f s\n", first_save);
    printf("save: %.3f s, %.2f GB/s (best of %d)\n", best_save, file / best_save / 1e9, repeats);
    printf("load from the disk (pages dropped): %.3f s, %.2f GB/s\n", best_cold, file / best_cold / 1e9);
    printf("load from the page cache: %.3f s, %.2f GB/s\n", best_load, file / best_load / 1e9);
    if (best_disk_write < 1e30 && best_disk_read < 1e30)
      printf("the disk alone, same bytes: direct write + fsync %.2f GB/s, read (pages dropped) %.2f GB/s\n",
             file / best_disk_write / 1e9, file / best_disk_read / 1e9);
    printf("fork: %.3f s, %.2f GB/s of device copies\n", best_fork, state / best_fork / 1e9);
    printf("loaded session continues bit-identically: %s\n", identical ? "yes" : "NO");
  }
  unlink(path);
  clttt_session_free(fork);
  clttt_session_free(loaded);
  clttt_session_free(session);
  clttt_model_free(model);
  clttt_device_close(device);
  free(ids);
  free(logits_a);
  free(logits_b);
  return ok && identical ? 0 : 1;
}
