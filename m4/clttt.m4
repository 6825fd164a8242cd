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
