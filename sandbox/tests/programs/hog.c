/* Allocates and touches 1 MiB blocks until malloc fails; exits 3 with the count printed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    for (int n = 0;; n++) {
        char *p = malloc(1 << 20);
        if (!p) {
            printf("out of memory after %d MiB\n", n);
            return 3;
        }
        memset(p, 1, 1 << 20);
    }
}
