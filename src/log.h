/* Messages for a person that are not errors (a cache ignored, a key
 * skipped): they go to the callback installed with clttt_set_log_callback,
 * so that the library itself never prints. */
#ifndef CLTTT_LOG_H
#define CLTTT_LOG_H

#include "clttt.h"
#include "error.h"

void log_warning(const char *format, ...) CLTTT_PRINTF(1, 2);
void log_info(const char *format, ...) CLTTT_PRINTF(1, 2);

#endif
