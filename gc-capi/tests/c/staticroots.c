/* Which static data is scanned: GC_exclude_static_roots (an object referenced only from
 * an excluded range dies), GC_clear_exclusion_table, the has-static-roots callback,
 * GC_no_dls (no static data; GC_add_roots ranges still count) and GC_clear_roots.
 * Each object's death is seen through a disguised disappearing link.
 * Argument "inc": incremental mode. */
#include <gc.h>
#include <stdint.h>
#include <string.h>
#include "check.h"

static void *volatile root;      /* in .bss: the only reference to the test object */
static GC_word link_word;        /* disguised link to it */

static void __attribute__((noinline)) make_object(void) {
  void *obj = GC_malloc(64);
  CHECK(obj != NULL);
  link_word = GC_HIDE_POINTER(obj);
  CHECK(GC_general_register_disappearing_link((void **)&link_word, obj) == GC_SUCCESS);
  root = obj;
}

/* True if the object made by make_object is still alive after clean collections. */
static int __attribute__((noinline)) survives(void) {
  collect_clean(3);
  return link_word != 0;
}

static int callback_calls, callback_saw_root, drop_root_segment;
static int has_static_roots(const char *name, void *start, size_t size) {
  callback_calls++;
  CHECK(name != NULL);
  int holds_root = (char *)start <= (char *)&root && (char *)&root < (char *)start + size;
  if (holds_root) {
    callback_saw_root++;
    CHECK(name[0] == '\0'); /* the executable */
  }
  return !(holds_root && drop_root_segment);
}

int main(int argc, char **argv) {
  int inc = argc > 1 && strcmp(argv[1], "inc") == 0;
  GC_INIT();
  if (inc) GC_enable_incremental();

  /* Control: the static root keeps the object alive. */
  make_object();
  CHECK(survives());

  /* Excluded: the same root keeps nothing. */
  GC_exclude_static_roots((void *)&root, (char *)&root + sizeof root);
  CHECK(!survives());

  /* Table cleared: static roots count again. */
  GC_clear_exclusion_table();
  make_object();
  CHECK(survives());

  /* The callback is asked about every segment, the executable's included; dropping
   * the segment holding `root` drops the root. */
  GC_register_has_static_roots_callback(has_static_roots);
  CHECK(survives());
  CHECK(callback_calls > 0 && callback_saw_root > 0);
  drop_root_segment = 1;
  CHECK(!survives());
  drop_root_segment = 0;
  GC_register_has_static_roots_callback(NULL);
  make_object();
  CHECK(survives());

  /* GC_no_dls: no static data at all; a range added with GC_add_roots still counts. */
  void **added = malloc(sizeof(void *));
  CHECK(added != NULL);
  *added = GC_malloc(32);
  GC_word added_link = GC_HIDE_POINTER(*added);
  CHECK(GC_general_register_disappearing_link((void **)&added_link, *added) == GC_SUCCESS);
  GC_add_roots(added, added + 1);
  GC_no_dls = 1;
  CHECK(GC_get_no_dls() == 1);
  CHECK(!survives());
  CHECK(added_link != 0);
  GC_set_no_dls(0);
  make_object();
  CHECK(survives());

  /* GC_clear_roots forgets GC_add_roots ranges. */
  GC_clear_roots();
  collect_clean(3);
  CHECK(added_link == 0);
  free(added);

  printf("incremental %d\n", GC_is_incremental_mode());
  printf("PASS\n");
  return 0;
}
