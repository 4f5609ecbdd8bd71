/* <gc_cpp.h>: the same header as <gc/gc_cpp.h> (bdwgc installs both paths). */
#include <gc/gc_cpp.h>
