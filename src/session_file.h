/* Session files (session_file.c): what the tests reach inside for. */
#ifndef CLTTT_SESSION_FILE_H
#define CLTTT_SESSION_FILE_H

/* Called by clttt_session_save at each step of the write: with the number
 * of sections written so far (0 = only the header), then -1 once the
 * temporary file is complete and synced, just before the rename, and -2
 * right after it. NULL in normal use; the crash test makes it kill the
 * process, to check that the old file survives every moment of a save. */
extern void (*session_file_test_hook)(int stage);

#endif
