/* Stores to the address given in argv[1] (hex): host memory, never granted. */
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    volatile unsigned long *p = (unsigned long *)strtoul(argv[1], 0, 16);
    *p = 0x666;
    return 0;
}
