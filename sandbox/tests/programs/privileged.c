/* Executes a privileged instruction at CPL3 (argv[1]: cli, hlt or cr3). */
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "cli")) __asm__ volatile("cli");
    else if (!strcmp(argv[1], "hlt")) __asm__ volatile("hlt");
    else __asm__ volatile("mov %%rax, %%cr3" ::"a"(0UL));
    return 0;
}
