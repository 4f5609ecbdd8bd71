/* Capture the program's own stderr (where bdwgc and dunegc print their reports) into a
 * temporary file, so a test program can check what the collector printed. */
#ifndef CAPTURE_H
#define CAPTURE_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int capture_fd = -1, saved_stderr = -1;

static void capture_start(void) {
  char path[] = "/tmp/gc-capture-XXXXXX";
  capture_fd = mkstemp(path);
  if (capture_fd < 0) { perror("mkstemp"); exit(1); }
  unlink(path);
  fflush(stderr);
  saved_stderr = dup(2);
  dup2(capture_fd, 2);
}

/* Stop capturing; returns what was written (malloc'd, NUL-terminated) and echoes it to
 * the real stderr. */
static char *capture_end(void) {
  fflush(stderr);
  off_t n = lseek(capture_fd, 0, SEEK_END);
  char *text = malloc((size_t)n + 1);
  if (pread(capture_fd, text, (size_t)n, 0) != n) { perror("pread"); exit(1); }
  text[n] = 0;
  dup2(saved_stderr, 2);
  close(capture_fd);
  fputs(text, stderr);
  return text;
}

static int count_of(const char *text, const char *needle) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
  return n;
}
#endif
