/* Reading the files a model directory names, which may be anything a path
 * can name: a FIFO would block open or read forever, a character device such
 * as /dev/zero never ends, so only regular files are accepted, and a whole
 * file is read only when it is within a size cap. */
#ifndef CLTTT_FILE_H
#define CLTTT_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "clttt.h"

#define FILE_MIB ((size_t)1024 * 1024)

/* Caps far above any real file of each kind (Qwen3's tokenizer.json is
 * 11 MiB, a 1000-shard index under 1 MiB) that still keep a wrong path from
 * costing gigabytes of memory. */
#define FILE_CAP_CONFIG (16 * FILE_MIB)
#define FILE_CAP_TOKENIZER_JSON (256 * FILE_MIB)
#define FILE_CAP_TOKENIZER_CONFIG (16 * FILE_MIB)
#define FILE_CAP_LLAMA2C_TOKENIZER (256 * FILE_MIB)
#define FILE_CAP_SHARD_INDEX (64 * FILE_MIB)
#define FILE_CAP_TUNING_CACHE (16 * FILE_MIB)

/* Opens `path` read-only without blocking (a FIFO with no writer fails here
 * instead of hanging), and refuses anything but a regular file. *descriptor
 * and *size receive the open file and its length. CLTTT_ERROR_IO naming the
 * path otherwise. */
clttt_status file_open_regular(const char *path, int *descriptor, uint64_t *size);

/* The whole regular file at `path` as a malloc'ed buffer with a NUL after
 * its *size bytes (the file itself may contain NULs). A file longer than
 * `cap` bytes is refused before it is read, with a message naming the path
 * and the cap; `what` names the kind of file in that message
 * ("tokenizer.json"). `cap` is a constant well below SIZE_MAX. */
clttt_status file_read_all(const char *path, size_t cap, const char *what, char **text, size_t *size);

#endif
