/* Allowed by hello.policy: prints to stdout and writes the file named by argv[1]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    printf("hello from a sandboxed static program (%d args)\n", argc);
    char *heap = malloc(200000); /* brk and mmap inside the arena */
    if (!heap) return 10;
    memset(heap, 'x', 200000);
    if (argc > 1) {
        FILE *f = fopen(argv[1], "w");
        if (!f) { perror("fopen"); return 11; }
        fprintf(f, "written by a sandboxed program: %c\n", heap[199999]);
        fclose(f);
    }
    free(heap);
    return 0;
}
