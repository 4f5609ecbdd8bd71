//! The collecting thread's own roots: callee-saved registers spilled to the stack, then
//! the stack from there up.

/// Spill the callee-saved registers into a stack array and call `f` with the lowest
/// address that must be scanned. Everything the caller chain holds is at or above it.
#[inline(never)]
pub fn with_spilled_registers<R>(f: impl FnOnce(usize) -> R) -> R {
    let mut regs = [0usize; 8];
    // SAFETY: stores six registers into our own local array; no other effect.
    unsafe {
        std::arch::asm!(
            "mov [{p}], rbx",
            "mov [{p} + 8], rbp",
            "mov [{p} + 16], r12",
            "mov [{p} + 24], r13",
            "mov [{p} + 32], r14",
            "mov [{p} + 40], r15",
            p = in(reg) regs.as_mut_ptr(),
            options(nostack, preserves_flags),
        )
    };
    let lowest = regs.as_ptr() as usize;
    let r = f(lowest);
    std::hint::black_box(&regs);
    r
}
