//! The main thread's stack grows by demand in Linux; inside Dune the guest page table maps it
//! as it was at entry, so `enter` grows it first. This binary runs on the main thread.

use std::hint::black_box;

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let pad = black_box([depth; 64]); // 512 bytes per frame
    if depth == 0 {
        return pad[0];
    }
    recurse(depth - 1) + black_box(pad[63]) - depth + 1
}

fn main() {
    // SAFETY: gettid/getpid have no preconditions.
    let main_thread = unsafe { libc::gettid() == libc::getpid() };
    assert!(main_thread, "harness = false runs on the main thread");
    if let Err(e) = dune_hw::enter() {
        if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
            panic!("/dev/kvm required: {e}");
        }
        println!("SKIPPED kvm_main_stack: {e}");
        return;
    }
    let r = recurse(2000); // 1-3 MiB of stack below the entry frame (release or debug)
    dune_hw::exit().unwrap();
    assert_eq!(r, 2000);
    println!("test main_stack_grows_inside_dune ... ok");
}
