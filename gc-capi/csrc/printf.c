/* bdwgc's printing functions GC_printf, GC_err_printf and GC_log_printf: C-variadic,
 * which stable Rust cannot define. gc-capi exports each name from Rust as a jump to the
 * matching hidden function here (see src/print.rs), so the C caller's registers and
 * stack reach these functions untouched. Output goes to fd 1, fd 2 and the log fd
 * (fd 2 unless GC_set_log_fd changed it), whole, with write(2) retried on EINTR and short
 * writes, as bdwgc's GC_write does. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define HIDDEN __attribute__((visibility("hidden")))

static volatile int log_fd = 2;

HIDDEN void dunegc_set_log_fd_impl(int fd) { log_fd = fd; }

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

static void vout(int fd, const char *fmt, va_list ap) {
  char buf[1024];
  va_list again;
  va_copy(again, ap);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  if (n >= 0 && (size_t)n < sizeof buf) {
    write_all(fd, buf, (size_t)n);
  } else if (n >= 0) {
    /* Longer than bdwgc's 1024-byte buffer (bdwgc truncates): print it whole. */
    char *big = malloc((size_t)n + 1);
    if (big != NULL) {
      vsnprintf(big, (size_t)n + 1, fmt, again);
      write_all(fd, big, (size_t)n);
      free(big);
    } else {
      write_all(fd, buf, sizeof buf - 1);
    }
  }
  va_end(again);
}

HIDDEN void dunegc_printf_impl(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vout(1, fmt, ap);
  va_end(ap);
}

HIDDEN void dunegc_err_printf_impl(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vout(2, fmt, ap);
  va_end(ap);
}

HIDDEN void dunegc_log_printf_impl(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vout(log_fd, fmt, ap);
  va_end(ap);
}
