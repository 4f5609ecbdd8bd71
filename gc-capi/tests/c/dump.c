/* GC_dump, GC_dump_named, GC_dump_regions print the collector's real state: a heap
 * section contains an object just allocated, the sections add up to the total heap size,
 * a static root range contains a static variable, the blocks in use include the small
 * and the large object's sizes.  GC_get_suspend_signal is the signal the collector's
 * handler is installed on.  Argument "inc": incremental mode. */
#define GC_THREADS
#include <gc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>
#include "check.h"

static void *volatile keep_small, *volatile keep_large;
static volatile int static_var = 1;

/* Run `dump` with stdout sent to a temporary file; returns the text (malloc'd). */
static char *capture_stdout(void (*dump)(void)) {
  char path[] = "/tmp/gc-dump-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  unlink(path);
  fflush(stdout);
  int saved = dup(1);
  dup2(fd, 1);
  dump();
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  off_t n = lseek(fd, 0, SEEK_END);
  char *text = malloc((size_t)n + 1);
  CHECK(pread(fd, text, (size_t)n, 0) == n);
  text[n] = 0;
  close(fd);
  return text;
}

static void dump_named(void) { GC_dump_named("checked"); }

/* Does some "<prefix>%lx to %lx" line of `text` (after `after`) contain `addr`?  Also
 * sums the ranges into *sum. */
static int range_contains(const char *text, const char *after, const char *prefix, uintptr_t addr,
                          unsigned long *sum) {
  const char *p = strstr(text, after);
  CHECK(p != NULL);
  int found = 0;
  size_t len = strlen(prefix);
  *sum = 0;
  for (const char *line = p; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
    if (strncmp(line, "\n", 1) == 0) break; /* a blank line ends the section */
    const char *q = strstr(line, prefix);
    const char *eol = strchr(line, '\n');
    if (!q || (eol && q > eol)) continue;
    unsigned long a, b;
    if (sscanf(q + len, "%lx to %lx", &a, &b) == 2) {
      CHECK(a < b);
      *sum += b - a;
      if (a <= addr && addr < b) found = 1;
    }
  }
  return found;
}

/* Does the "Blocks in use" list hold a normal-kind block of `lo` to `hi` bytes? */
static int block_of_size(const char *text, unsigned long lo, unsigned long hi) {
  const char *p = strstr(text, "***Blocks in use:\n");
  CHECK(p != NULL);
  p = strchr(p + strlen("***Blocks in use:\n"), '\n'); /* skip the column header */
  CHECK(p != NULL);
  for (const char *line = p + 1; *line; ) {
    unsigned kind;
    unsigned long size;
    if (sscanf(line, "%u,%lu,", &kind, &size) == 2 && kind == 1 && lo <= size && size <= hi)
      return 1;
    const char *eol = strchr(line, '\n');
    if (!eol) break;
    line = eol + 1;
  }
  return 0;
}

static void *idle_thread(void *arg) {
  (void)arg;
  return GC_MALLOC(16);
}

int main(int argc, char **argv) {
  int inc = argc > 1 && strcmp(argv[1], "inc") == 0;
  GC_INIT();
  if (inc) GC_enable_incremental();
  keep_small = GC_MALLOC(100);
  keep_large = GC_MALLOC(1 << 20);
  CHECK(keep_small && keep_large);
  GC_gcollect();

  char *text = capture_stdout(GC_dump);
  CHECK(strstr(text, "***GC Dump") != NULL);
  unsigned long sections, roots;
  char *s = strstr(text, "Section ");
  CHECK(s != NULL);
  /* Every section line is "Section N from A to B". */
  CHECK(range_contains(text, "***Heap sections:", " from ", (uintptr_t)keep_small, &sections));
  CHECK(range_contains(text, "***Heap sections:", " from ", (uintptr_t)keep_large, &sections));
  unsigned long total = 0;
  CHECK(sscanf(strstr(text, "Total heap size: "), "Total heap size: %lu", &total) == 1);
  CHECK(total == sections);
  CHECK(total >= (1 << 20));
  CHECK(range_contains(text, "***Static roots:", "From ", (uintptr_t)&static_var, &roots));
  CHECK(roots > 0);
  CHECK(block_of_size(text, 100, 128));
  CHECK(block_of_size(text, 1 << 20, (1 << 20) + 8192));
  CHECK(!block_of_size(text, 3 << 20, 4 << 20));
  free(text);

  text = capture_stdout(dump_named);
  CHECK(strstr(text, "***GC Dump checked\n") != NULL);
  CHECK(range_contains(text, "***Heap sections:", " from ", (uintptr_t)keep_small, &sections));
  free(text);

  text = capture_stdout(GC_dump_regions);
  CHECK(range_contains(text, "", "***Section from ", (uintptr_t)keep_large, &sections));
  free(text);

  /* The suspend signal carries the collector's handler once threads were stopped. */
  pthread_t t;
  void *res;
  CHECK(GC_pthread_create(&t, NULL, idle_thread, NULL) == 0);
  CHECK(GC_pthread_join(t, &res) == 0);
  CHECK(res != NULL);
  GC_gcollect();
  int sig = GC_get_suspend_signal();
  printf("suspend signal %d restart signal %d\n", sig, GC_get_thr_restart_signal());
  CHECK(sig == SIGPWR);
  struct sigaction sa;
  CHECK(sigaction(sig, NULL, &sa) == 0);
  CHECK(sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
  int restart = GC_get_thr_restart_signal();
  CHECK(restart == -1 || (restart > 0 && restart != sig));
  printf("incremental %d\nPASS\n", GC_is_incremental_mode());
  return 0;
}
