/* The GC_DEBUG allocator: debug headers (GC_base of a body is 32 bytes before it),
 * finalizers that receive the body, a smashed trailer reported at the next collection
 * and by GC_debug_free with file and line, a double GC_debug_free reported and
 * ignored, GC_debug_realloc keeping contents, the pointer checks with replaced print
 * procedures.  Argument "inc": incremental mode. */
#define GC_DEBUG 1
#include <gc.h>
#include "check.h"
#include "capture.h"
#include <signal.h>
#include <sys/wait.h>

static int finalized;
static GC_word expected_obj;
static void GC_CALLBACK on_final(void *obj, void *cd) {
  if ((GC_word)obj == GC_HIDE_POINTER(expected_obj) && cd == (void *)7) finalized++;
}

static int warnings;
static void GC_CALLBACK __attribute__((unused)) on_warn(char *msg, GC_word arg) {
  (void)msg;
  (void)arg;
  warnings++;
}

static int same_obj_failures, visible_failures;
static void GC_CALLBACK on_same_obj(void *p, void *q) { (void)p; (void)q; same_obj_failures++; }
static void GC_CALLBACK on_visible(void *p) { (void)p; visible_failures++; }

static void __attribute__((noinline)) make_finalizable(void) {
  char *q = GC_MALLOC(24);
  GC_finalization_proc ofn = on_final;
  void *ocd = (void *)1;
  GC_REGISTER_FINALIZER(q, on_final, (void *)7, &ofn, &ocd);
  CHECK(ofn == NULL && ocd == NULL);
  expected_obj = GC_HIDE_POINTER(q);
}

char *volatile smashed;
int main(int argc, char **argv) {
  GC_INIT();
  if (argc > 1 && strcmp(argv[1], "inc") == 0) {
    GC_enable_incremental();
  }
  printf("incremental %d\n", GC_is_incremental_mode());

  char *p = GC_MALLOC(10);
  CHECK(p != NULL && (char *)GC_base(p) == p - 32);
  CHECK(GC_size(GC_base(p)) >= 10 + 40);
  for (int i = 0; i < 10; i++) CHECK(p[i] == 0);

  make_finalizable();
  collect_clean(3);
  for (int i = 0; i < 100; i++) (void)GC_MALLOC(16);
  CHECK(finalized == 1);

  /* Smash the word after the (word-rounded) body: reported by the collection. */
  capture_start();
  smashed = p;
  int line = __LINE__ + 1;
  char *victim = GC_MALLOC(10);
  victim[16] = 'x';
  smashed = victim;
  GC_gcollect();
  char *text = capture_end();
  CHECK(count_of(text, "GC_check_heap_block: found 1 smashed heap objects:") == 1);
  char want[256];
  snprintf(want, sizeof want, " %p in or near object at %p (", (void *)(victim + 16),
           (void *)victim);
  CHECK(strstr(text, want) != NULL);
  snprintf(want, sizeof want, "debug.c:%d, sz= 10)", line);
  CHECK(strstr(text, want) != NULL);
  free(text);

  /* GC_debug_free reports it too, then frees. */
  capture_start();
  GC_FREE(victim);
  smashed = NULL;
  text = capture_end();
  CHECK(count_of(text, "GC_debug_free: found smashed location at") == 1);
  CHECK(strstr(text, want) != NULL);
  free(text);

  /* A clean free is silent; the body is overwritten; a second free is reported. */
  capture_start();
  GC_word *r = GC_MALLOC(16);
  r[0] = 1;
  GC_FREE(r);
  CHECK(r[0] != 1);
  GC_FREE(r);
  text = capture_end();
  CHECK(count_of(text, "GC_debug_free: found previously deallocated (?) object at") == 1);
  CHECK(count_of(text, "GC_debug_free") == 1);
  free(text);

  /* GC_debug_realloc and GC_debug_strdup keep contents and debug headers. */
  char *s = GC_STRDUP("hello debug");
  CHECK(s != NULL && strcmp(s, "hello debug") == 0 && (char *)GC_base(s) == s - 32);
  char *s2 = GC_REALLOC(s, 4000);
  CHECK(s2 != NULL && strcmp(s2, "hello debug") == 0 && (char *)GC_base(s2) == s2 - 32);
  char *s3 = GC_STRNDUP("abcdef", 3);
  CHECK(strcmp(s3, "abc") == 0);
  GC_word *u = GC_MALLOC_UNCOLLECTABLE(32);
  u[3] = 9;
  collect_clean(1);
  CHECK(u[3] == 9);
  GC_FREE(u);

  /* Pointer checks. */
  GC_same_obj_print_proc = on_same_obj;
  GC_is_visible_print_proc = on_visible;
  char *a = GC_MALLOC(16), *b = GC_MALLOC(16);
  CHECK(GC_same_obj(a + 3, a) == a + 3 && same_obj_failures == 0);
  CHECK(GC_same_obj(a, b) == a && same_obj_failures == 1);
  char *c = a;
  CHECK(GC_PTR_ADD(c, 5) == a + 5 && same_obj_failures == 1);
  CHECK(GC_PRE_INCR(c, 4) == a + 4 && c == a + 4);
  CHECK(GC_POST_INCR(c) == a + 4 && c == a + 5 && same_obj_failures == 1);
  GC_word local = 0;
  CHECK(GC_is_visible(&local) == &local && visible_failures == 0);
  CHECK(GC_is_visible((char *)&local + 1) == (char *)&local + 1 && visible_failures == 1);
  void *slot[1];
  GC_PTR_STORE(&slot[0], a);
  CHECK(slot[0] == a);
  GC_reachable_here(b);

  /* Bad input: GC_debug_free of a pointer outside the heap aborts with bdwgc's
   * message (in a child process). */
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(2); /* the abort message is expected */
    GC_FREE(&local);
    _exit(0);
  }
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#ifdef GC_DUNEGC
  /* GC_free of a debug body through the non-debug call: warned, nothing freed. */
  GC_set_warn_proc(on_warn);
  char *d = GC_MALLOC(40);
  GC_free(d);
  CHECK(warnings == 1 && (char *)GC_base(d) == d - 32);
  GC_FREE(d);
#endif
  printf("PASS\n");
  return 0;
}
