/* Opening and reading a regular file, refusing FIFOs, devices and files
 * over a cap. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "file.h"

static const char *file_kind(mode_t mode) {
  if (S_ISDIR(mode))
    return "a directory";
  if (S_ISFIFO(mode))
    return "a FIFO";
  if (S_ISCHR(mode))
    return "a character device";
  if (S_ISBLK(mode))
    return "a block device";
  if (S_ISSOCK(mode))
    return "a socket";
  return "a special file";
}

clttt_status file_open_regular(const char *path, int *descriptor, uint64_t *size) {
  *descriptor = -1;
  *size = 0;
  /* O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer.
   * It changes nothing for the regular files that get past fstat. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0)
    return clttt_fail(CLTTT_ERROR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat info;
  if (fstat(fd, &info) != 0) {
    int saved = errno;
    close(fd);
    return clttt_fail(CLTTT_ERROR_IO, "%s: cannot stat: %s", path, strerror(saved));
  }
  if (!S_ISREG(info.st_mode)) {
    close(fd);
    return clttt_fail(CLTTT_ERROR_IO, "%s: not a regular file (%s)", path, file_kind(info.st_mode));
  }
  *descriptor = fd;
  *size = info.st_size < 0 ? 0 : (uint64_t)info.st_size;
  return CLTTT_SUCCESS;
}

static clttt_status too_large(const char *path, const char *what, size_t cap) {
  if (cap % FILE_MIB == 0)
    return clttt_fail(CLTTT_ERROR_IO, "%s: larger than the %zu MiB cap for %s", path, cap / FILE_MIB, what);
  return clttt_fail(CLTTT_ERROR_IO, "%s: larger than the %zu-byte cap for %s", path, cap, what);
}

clttt_status file_read_all(const char *path, size_t cap, const char *what, char **text, size_t *size) {
  *text = NULL;
  *size = 0;
  int fd;
  uint64_t length;
  CLTTT_TRY(file_open_regular(path, &fd, &length));
  if (length > cap) {
    close(fd);
    return too_large(path, what, cap);
  }
  /* The file may grow or shrink while it is read; what counts is what read()
   * returns, still within the cap. One spare byte detects growth past the
   * stat size without a second pass. */
  size_t capacity = (size_t)length + 2;
  char *buffer = malloc(capacity);
  if (!buffer) {
    close(fd);
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory for %zu bytes", path, capacity);
  }
  size_t used = 0;
  for (;;) {
    if (used + 1 == capacity) {
      if (used > cap) {
        free(buffer);
        close(fd);
        return too_large(path, what, cap);
      }
      size_t larger = capacity * 2 > cap + 2 ? cap + 2 : capacity * 2;
      char *grown = realloc(buffer, larger);
      if (!grown) {
        free(buffer);
        close(fd);
        return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory for %zu bytes", path, larger);
      }
      buffer = grown;
      capacity = larger;
    }
    ssize_t got = read(fd, buffer + used, capacity - 1 - used);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      int saved = errno;
      free(buffer);
      close(fd);
      return clttt_fail(CLTTT_ERROR_IO, "%s: read error: %s", path, strerror(saved));
    }
    if (got == 0)
      break;
    used += (size_t)got;
  }
  close(fd);
  if (used > cap) {
    free(buffer);
    return too_large(path, what, cap);
  }
  buffer[used] = '\0';
  *text = buffer;
  *size = used;
  return CLTTT_SUCCESS;
}
