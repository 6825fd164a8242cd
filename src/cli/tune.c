/* placeholder: being written */
#include "cli.h"
int command_tune(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return 1;
}
