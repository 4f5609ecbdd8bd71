//! The main thread's `[stack]` grown before entering (state layer: the stacks a Dune thread
//! runs on): guest accesses do not grow it.

use crate::paging::maps;

/// Most bytes of the main thread's stack made part of `[stack]` below the current frame
/// before entering (bounded by RLIMIT_STACK): the kernel grows `[stack]` only for host
/// accesses, and the guest page table maps the stack as it is. Only the lowest page is
/// touched; the rest costs nothing until used.
const MAIN_STACK_HEADROOM_BYTES: u64 = 64 << 20;

/// On the main thread, touches the page [`MAIN_STACK_HEADROOM_BYTES`] below the current
/// frame so the kernel grows `[stack]` down to it now (a guest access below the stack as
/// mapped at entry would be an unhandled fault).
#[inline(never)]
pub(crate) fn grow_main_stack() {
    let sp: u64;
    // SAFETY: reading rsp has no side effects.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack)) };
    let Some(m) = maps::find(sp) else { return };
    if !m.is_main_stack {
        return;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut limit) } != 0 {
        return;
    }
    // stay well inside RLIMIT_STACK (counted from the top of the stack)
    let used = m.end - sp;
    let room = limit.rlim_cur.saturating_sub(used + (64 << 10));
    let target = (sp - MAIN_STACK_HEADROOM_BYTES.min(room)) & !0xfff;
    if target < m.start {
        // SAFETY: an address below the stack pointer within the stack's growth range
        // (inside RLIMIT_STACK): the kernel extends `[stack]` down to it; no object lives
        // there yet, and the read has no other effect.
        unsafe { core::ptr::read_volatile(target as *const u8) };
    }
}
