// Layer 1: arch (dune-hw/LAYERS).
//! GDT and TSS layout, as pure functions. The selector layout matches STAR so that
//! `syscall`/`sysret` and the PVM hypervisor's checks agree:
//! kernel CS 0x10 / SS 0x18, user CS 0x33 / SS 0x2b (STAR user base 0x23), TSS 0x40.

/// Kernel 64-bit code selector.
pub const KERNEL_CS: u16 = 0x10;
/// Kernel data selector.
pub const KERNEL_SS: u16 = 0x18;
/// User data selector (RPL 3).
pub const USER_SS: u16 = 0x2b;
/// User 64-bit code selector (RPL 3).
pub const USER_CS: u16 = 0x33;
/// TSS selector.
pub const TSS_SEL: u16 = 0x40;
/// MSR_STAR value for these selectors.
pub const STAR: u64 = (0x10 << 32) | (0x23 << 48);
/// GDT entries (8 bytes each; the TSS takes two).
pub const GDT_ENTRIES: usize = 10;
/// TSS size in bytes.
pub const TSS_LEN_BYTES: u64 = 0x68;

/// The GDT with a TSS at `tss`.
pub fn gdt(tss: u64) -> [u64; GDT_ENTRIES] {
    let mut g = [0u64; GDT_ENTRIES];
    g[1] = 0x00cf_9b00_0000_ffff; // kernel code32 (unused)
    g[2] = 0x00af_9b00_0000_ffff; // 0x10 kernel code64
    g[3] = 0x00cf_9300_0000_ffff; // 0x18 kernel data
    g[4] = 0x00cf_fb00_0000_ffff; // 0x20 user code32
    g[5] = 0x00cf_f300_0000_ffff; // 0x28 user data
    g[6] = 0x00af_fb00_0000_ffff; // 0x30 user code64
    let limit = TSS_LEN_BYTES - 1;
    g[8] =
        (limit & 0xffff) | ((tss & 0xff_ffff) << 16) | (0x89 << 40) | (((tss >> 24) & 0xff) << 56);
    g[9] = tss >> 32;
    g
}

/// The 64-bit TSS: RSP0 (stack for CPL3 -> CPL0 events) and IST1; no I/O bitmap.
pub fn tss(rsp0: u64, ist1: u64) -> [u8; TSS_LEN_BYTES as usize] {
    let mut t = [0u8; TSS_LEN_BYTES as usize];
    t[4..12].copy_from_slice(&rsp0.to_le_bytes());
    t[36..44].copy_from_slice(&ist1.to_le_bytes());
    t[102..104].copy_from_slice(&(TSS_LEN_BYTES as u16).to_le_bytes());
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_selectors() {
        // sysret: CS = base+16, SS = base+8 (RPL 3); syscall: CS = kernel, SS = kernel+8
        assert_eq!(((STAR >> 48) + 16) as u16 | 3, USER_CS);
        assert_eq!(((STAR >> 48) + 8) as u16 | 3, USER_SS);
        assert_eq!((STAR >> 32) as u16, KERNEL_CS);
        assert_eq!(KERNEL_CS + 8, KERNEL_SS);
    }

    #[test]
    fn tss_descriptor_encodes_base() {
        let g = gdt(0x7f12_3456_7000);
        assert_eq!((g[8] >> 16) & 0xff_ffff, 0x56_7000);
        assert_eq!(g[8] >> 56, 0x34);
        assert_eq!(g[9], 0x7f12);
        assert_eq!((g[8] >> 40) & 0xff, 0x89);
        let t = tss(0x1000, 0x2000);
        assert_eq!(u64::from_le_bytes(t[4..12].try_into().unwrap()), 0x1000);
        assert_eq!(u64::from_le_bytes(t[36..44].try_into().unwrap()), 0x2000);
    }
}
