/* libFuzzer target: clttt_session_read_info (a session file's every header,
 * section size and checksum, read without a model) on arbitrary bytes.
 * Seeds: files written by `clttt logits -m FIXTURE --tokens 1,2,3(,4,5)
 * --out /dev/null --session-out F` on the qwen3-tied and ttt-proj-hidden
 * fixtures (tests/write-fixtures), in format version 1 (crc32; the two
 * without -v2 in their names, by clttt before XXH3-64) and version 2. */
#include <stdint.h>

#include "clttt.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[4096];
  fuzz_write_file("fuzz.session", data, size, path, sizeof path);
  clttt_session_file_info info;
  clttt_session_read_info(path, &info);
  return 0;
}
