/* Error reporting inside the library: set a message, return the status. */
#ifndef CLTTT_ERROR_H
#define CLTTT_ERROR_H

#include "clttt.h"

#if defined(__GNUC__)
#define CLTTT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLTTT_PRINTF(a, b)
#endif

/* Records a message for clttt_last_error() and returns `status`, so a
 * failing function can `return clttt_fail(CLTTT_ERROR_IO, "...", ...)`. */
int clttt_fail(int status, const char *format, ...) CLTTT_PRINTF(2, 3);
/* Prefixes the current message with more context ("loading layer 3: ..."). */
int clttt_fail_context(int status, const char *format, ...) CLTTT_PRINTF(2, 3);
/* Clears the message. */
void clttt_clear_error(void);

/* Propagates a failing status unchanged. */
#define CLTTT_TRY(expr)                 \
  do {                                  \
    int try_status_ = (expr);           \
    if (try_status_ != CLTTT_SUCCESS)   \
      return try_status_;               \
  } while (0)

#endif
