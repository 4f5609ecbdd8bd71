//! Compiles `csrc/printf.c`: bdwgc's C-variadic printing functions (`GC_printf` & co.),
//! which stable Rust cannot define; `src/print.rs` exports them.

fn main() {
    println!("cargo:rerun-if-changed=csrc/printf.c");
    cc::Build::new()
        .file("csrc/printf.c")
        .flag_if_supported("-fvisibility=hidden")
        .warnings(true)
        .compile("dunegc_printf");
}
