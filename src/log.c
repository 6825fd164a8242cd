/* The log callback and the library's version. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "log.h"

static void print_to_stderr(clttt_log_level level, const char *message, void *user_data) {
  (void)user_data;
  if (level == CLTTT_LOG_WARNING)
    fprintf(stderr, "clttt: warning: %s\n", message);
}

/* Callers on other threads read the pair while it may be replaced, hence
 * the lock; the callback itself runs outside it. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static clttt_log_callback log_callback = print_to_stderr;
static void *log_user_data = NULL;

void clttt_set_log_callback(clttt_log_callback callback, void *user_data) {
  pthread_mutex_lock(&log_lock);
  log_callback = callback ? callback : print_to_stderr;
  log_user_data = callback ? user_data : NULL;
  pthread_mutex_unlock(&log_lock);
}

static void emit(clttt_log_level level, const char *format, va_list arguments) {
  char message[2048];
  vsnprintf(message, sizeof message, format, arguments);
  pthread_mutex_lock(&log_lock);
  clttt_log_callback callback = log_callback;
  void *user_data = log_user_data;
  pthread_mutex_unlock(&log_lock);
  callback(level, message, user_data);
}

void log_warning(const char *format, ...) {
  va_list arguments;
  va_start(arguments, format);
  emit(CLTTT_LOG_WARNING, format, arguments);
  va_end(arguments);
}

void log_info(const char *format, ...) {
  va_list arguments;
  va_start(arguments, format);
  emit(CLTTT_LOG_INFO, format, arguments);
  va_end(arguments);
}

const char *clttt_version(void) { return CLTTT_VERSION_STRING; }
