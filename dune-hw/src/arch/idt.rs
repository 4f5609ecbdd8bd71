// Layer 1: arch (dune-hw/LAYERS).
//! IDT gates as pure functions, and the exception vectors.

use crate::arch::gdt::KERNEL_CS;

/// Exception vectors the monitor names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Vector {
    /// #DE
    DivideError = 0,
    /// #DB
    Debug = 1,
    /// #BP
    Breakpoint = 3,
    /// #UD
    InvalidOpcode = 6,
    /// #DF
    DoubleFault = 8,
    /// #GP
    GeneralProtection = 13,
    /// #PF
    PageFault = 14,
}

/// Whether the CPU pushes an error code for `vector`.
pub fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// A short name for `vector` ("#PF").
pub fn name(vector: u64) -> &'static str {
    const N: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
        "#GP", "#PF", "15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "22", "23", "24", "25", "26",
        "27", "#HV", "#VC", "#SX", "31",
    ];
    N.get(vector as usize).copied().unwrap_or("interrupt")
}

/// A 64-bit interrupt gate (DPL 0, present) to `handler` on kernel CS, stack `ist` (0 = none).
pub fn gate(handler: u64, ist: u8) -> [u64; 2] {
    let lo = (handler & 0xffff)
        | ((KERNEL_CS as u64) << 16)
        | (((ist & 7) as u64) << 32)
        | (0x8e << 40)
        | (((handler >> 16) & 0xffff) << 48);
    [lo, handler >> 32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_layout() {
        let [lo, hi] = gate(0x7fff_1234_5678, 1);
        assert_eq!(lo & 0xffff, 0x5678);
        assert_eq!((lo >> 48) & 0xffff, 0x1234);
        assert_eq!(hi, 0x7fff);
        assert_eq!((lo >> 16) & 0xffff, 0x10);
        assert_eq!((lo >> 32) & 7, 1);
        assert_eq!((lo >> 40) & 0xff, 0x8e);
    }

    #[test]
    fn error_codes() {
        assert!(has_error_code(Vector::PageFault as u8));
        assert!(has_error_code(Vector::GeneralProtection as u8));
        assert!(!has_error_code(Vector::InvalidOpcode as u8));
        assert_eq!(name(14), "#PF");
    }
}
