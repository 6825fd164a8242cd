/* Session files (session_file.c): what the tests reach inside for. */
#ifndef CLTTT_SESSION_FILE_H
#define CLTTT_SESSION_FILE_H

#include <stddef.h>

/* Called by clttt_session_save at each step of the write: with the number
 * of sections streamed so far (0 = only the header; the last pieces may
 * still be on their way to the temporary file), then -1 once the temporary
 * file is complete and synced, just before the rename, and -2 right after
 * it. NULL in normal use; the crash test makes it kill the
 * process, to check that the old file survives every moment of a save. */
extern void (*session_file_test_hook)(int stage);

/* The format version clttt_session_save writes: the newest (2) in normal
 * use; the tests set 1 to check that files of the older format, which
 * loading still accepts, load as they should. */
extern int session_file_write_version;

/* Bytes of each of the two buffers a save or load streams through (16 MiB;
 * whole 4096-byte blocks, two at least, else the default): the tests make
 * it small so that their small files cross many buffers. */
extern size_t session_file_staging_bytes;

#endif
