# clttt's own configure macros.

# CLTTT_REQUIRE_PACKAGE(VARIABLE-PREFIX, PKG-CONFIG-MODULES, HUMAN-NAME, DEBIAN-PACKAGE)
# Stops configure with a message that says which Debian package to install.
AC_DEFUN([CLTTT_REQUIRE_PACKAGE], [
  PKG_CHECK_MODULES([$1], [$2], [],
    [AC_MSG_ERROR([$3 not found: apt-get install $4])])
])

# CLTTT_WARNING_FLAGS: -Wall -Wextra always; --enable-werror makes them errors.
AC_DEFUN([CLTTT_WARNING_FLAGS], [
  AC_ARG_ENABLE([werror],
    [AS_HELP_STRING([--enable-werror], [treat compiler warnings as errors])],
    [], [enable_werror=no])
  WARN_CFLAGS="-Wall -Wextra"
  AS_IF([test "x$enable_werror" = xyes], [WARN_CFLAGS="$WARN_CFLAGS -Werror"])
  AC_SUBST([WARN_CFLAGS])
])

# CLTTT_SANITIZERS: --enable-sanitizers builds everything with ASan + UBSan.
AC_DEFUN([CLTTT_SANITIZERS], [
  AC_ARG_ENABLE([sanitizers],
    [AS_HELP_STRING([--enable-sanitizers],
      [build with AddressSanitizer and UndefinedBehaviorSanitizer])],
    [], [enable_sanitizers=no])
  SANITIZER_FLAGS=""
  AS_IF([test "x$enable_sanitizers" = xyes],
    [SANITIZER_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"])
  AC_SUBST([SANITIZER_FLAGS])
  AM_CONDITIONAL([SANITIZERS], [test "x$enable_sanitizers" = xyes])
])

# CLTTT_FUZZERS: --enable-fuzzers builds the libFuzzer targets in tests/fuzz
# ("make fuzz" runs them). libFuzzer comes with clang only, so configure
# stops unless the compiler can link a -fsanitize=fuzzer program.
AC_DEFUN([CLTTT_FUZZERS], [
  AC_ARG_ENABLE([fuzzers],
    [AS_HELP_STRING([--enable-fuzzers],
      [build the libFuzzer targets in tests/fuzz (needs clang: CC=clang)])],
    [], [enable_fuzzers=no])
  FUZZ_CFLAGS=""
  AS_IF([test "x$enable_fuzzers" = xyes], [
    AC_MSG_CHECKING([whether $CC can build libFuzzer targets])
    clttt_saved_CFLAGS=$CFLAGS
    CFLAGS="$CFLAGS -fsanitize=fuzzer,address,undefined"
    AC_LINK_IFELSE(
      [AC_LANG_SOURCE([[#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return data && size > 3 && data[3] == 7; }]])],
      [AC_MSG_RESULT([yes])],
      [AC_MSG_RESULT([no])
       AC_MSG_ERROR([--enable-fuzzers needs clang with libFuzzer: apt-get install clang libclang-rt-14-dev, then ./configure --enable-fuzzers CC=clang])])
    CFLAGS=$clttt_saved_CFLAGS
    FUZZ_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
  ])
  AC_SUBST([FUZZ_CFLAGS])
  AM_CONDITIONAL([FUZZERS], [test "x$enable_fuzzers" = xyes])
])
