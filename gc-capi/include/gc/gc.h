/* <gc/gc.h>: the same header as <gc.h> (bdwgc installs both paths). */
#include "../gc.h"
