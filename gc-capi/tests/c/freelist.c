/* GC_print_free_list(kind, granules): every slot freed with GC_free is listed, in
 * bdwgc's format, under its 4 KiB heap block; objects still allocated are not; another
 * size lists none of them.  Argument "inc": incremental mode. */
#include <gc.h>
#include <gc/gc_inline.h>
#include <gc/gc_mark.h>
#include "check.h"
#include <unistd.h>

#define N 200
static void *volatile objs[N];

/* What GC_print_free_list(kind, granules) wrote to standard output. */
static char *print_free_list(int kind, size_t granules) {
  char path[] = "/tmp/gc-freelist-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  unlink(path);
  fflush(stdout);
  int saved = dup(1);
  dup2(fd, 1);
  GC_print_free_list(kind, granules);
  fflush(stdout);
  dup2(saved, 1);
  close(saved);
  off_t n = lseek(fd, 0, SEEK_END);
  char *text = malloc((size_t)n + 1);
  CHECK(text != NULL);
  CHECK(pread(fd, text, (size_t)n, 0) == n);
  text[n] = 0;
  close(fd);
  return text;
}

static int listed(const char *text, void *p) {
  char line[128];
  snprintf(line, sizeof line, "]: %p\n", p);
  const char *at = strstr(text, line);
  if (at == NULL) return 0;
  /* The line names the slot's heap block. */
  const char *start = at;
  while (start > text && start[-1] != '\n') start--;
  char block[128];
  snprintf(block, sizeof block, "Free object in heap block %p [",
           (void *)((GC_word)p & ~(GC_word)4095));
  return strncmp(start, block, strlen(block)) == 0;
}

int main(int argc, char **argv) {
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
    CHECK(GC_is_incremental_mode());
  }
  for (int i = 0; i < N; i++) {
    objs[i] = GC_malloc(32); /* NORMAL kind */
    CHECK(objs[i] != NULL);
  }
  /* The objects' size class, in granules (bdwgc adds a byte for interior pointers
   * past the end: 32 bytes take three granules there, two in dunegc). */
  size_t granules = GC_size(objs[0]) / 16;
  for (int i = 0; i < N; i += 4) GC_free(objs[i]);
  char *text = print_free_list(GC_I_NORMAL, granules);
  int freed = 0;
  for (int i = 0; i < N; i++) {
    if (i % 4 == 0) {
      CHECK(listed(text, objs[i]));
      freed++;
    } else {
      CHECK(!listed(text, objs[i]));
    }
  }
  char *other = print_free_list(GC_I_PTRFREE, granules);
  for (int i = 0; i < N; i += 4) CHECK(!listed(other, objs[i]));
  char *bigger = print_free_list(GC_I_NORMAL, granules + 1);
  for (int i = 0; i < N; i += 4) CHECK(!listed(bigger, objs[i]));
  printf("freed %d incremental %d\nPASS\n", freed, GC_is_incremental_mode());
  return 0;
}
