/* The clttt command line: one function per subcommand. */
#ifndef CLTTT_CLI_H
#define CLTTT_CLI_H

#include "clttt.h"

int command_devices(int argc, char **argv);

/* Prints "clttt: <message>" with the library's last error to stderr. */
void cli_report(const char *what, int status);
/* True when argv[*index] is `name`; then *value is the next argument.
 * A missing value prints an error and sets *missing. */
int cli_option_value(int argc, char **argv, int *index, const char *name, const char **value,
                     int *missing);
int cli_is_help(const char *argument);

#endif
