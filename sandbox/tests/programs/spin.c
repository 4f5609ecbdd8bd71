/* Never ends (no syscall at all): only the timeout stops it. */
int main(void) {
    for (volatile unsigned long i = 0;; i++) {
    }
}
