//! The machine a report ran on, collected automatically: CPU, cores, memory, kernel, and
//! what KVM offers here (the Dune backend's precondition). Only facts read from the
//! system; nothing is guessed from names.

use std::path::Path;

/// Where and on what a report ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Machine {
    /// Host name (the report's file name uses a sanitized form).
    pub hostname: String,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical CPUs this process may run on.
    pub logical_cpus: usize,
    /// `MemTotal` from /proc/meminfo.
    pub mem_total_bytes: u64,
    /// `uname -srvm`.
    pub kernel: String,
    /// Whether the CPU flags say we run under a hypervisor (`hypervisor` in cpuinfo).
    pub under_hypervisor: bool,
    /// What KVM looks like here, one line.
    pub kvm: String,
    /// `/proc/loadavg`'s 1, 5 and 15 minute load averages when collected.
    pub load_average: String,
}

impl Machine {
    /// Read the machine description from /proc, /sys, /dev and uname.
    pub fn collect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
        let (kernel, hostname) = uname();
        let flags = cpuinfo_field(&cpuinfo, "flags").unwrap_or_default();
        let has_flag = |f: &str| flags.split_whitespace().any(|x| x == f);
        Machine {
            hostname,
            cpu_model: cpuinfo_field(&cpuinfo, "model name")
                .unwrap_or_else(|| "unknown CPU".to_owned()),
            logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            mem_total_bytes: meminfo_total_bytes(&meminfo).unwrap_or(0),
            kernel,
            under_hypervisor: has_flag("hypervisor"),
            load_average: load_average(),
            kvm: describe_kvm(
                Path::new("/dev/kvm"),
                Path::new("/sys/module"),
                &cmdline,
                has_flag("vmx"),
                has_flag("svm"),
            ),
        }
    }

    /// The name used in report file names: host name, CPU model and CPU count, sanitized
    /// (`vm-amd-epyc-2cpu`).
    pub fn file_stem(&self) -> String {
        let raw = format!(
            "{}-{}-{}cpu",
            self.hostname, self.cpu_model, self.logical_cpus
        );
        let s: String = raw
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut out = String::new();
        for part in s.split('_').filter(|p| !p.is_empty()) {
            if !out.is_empty() {
                out.push('-');
            }
            out.push_str(part);
        }
        out
    }
}

/// The 1, 5 and 15 minute load averages, from /proc/loadavg ("?" if unreadable).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".to_owned(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

fn cpuinfo_field(cpuinfo: &str, key: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

fn meminfo_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn c_field(field: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = field
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// (`sysname release version machine`, nodename).
fn uname() -> (String, String) {
    // SAFETY: utsname is plain old data; all-zero is a valid value.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is valid, writable storage for the duration of the call.
    if unsafe { libc::uname(&mut u) } != 0 {
        return ("unknown kernel".to_owned(), "unknown".to_owned());
    }
    (
        format!(
            "{} {} {} {}",
            c_field(&u.sysname),
            c_field(&u.release),
            c_field(&u.version),
            c_field(&u.machine)
        ),
        c_field(&u.nodename),
    )
}

/// One line on KVM: /dev/kvm present and openable, which kvm modules are loaded (a
/// `kvm_pvm` module means a PVM-style host where guest CPL0 is emulated and Dune runs
/// its ring-3 mode), and the CPU's virtualization flags.
pub fn describe_kvm(
    dev_kvm: &Path,
    sys_module: &Path,
    cmdline: &str,
    vmx: bool,
    svm: bool,
) -> String {
    let dev = if !dev_kvm.exists() {
        "no /dev/kvm".to_owned()
    } else {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dev_kvm)
        {
            Ok(_) => "/dev/kvm present (read-write)".to_owned(),
            Err(e) => format!("/dev/kvm present but not openable ({e})"),
        }
    };
    let modules: Vec<&str> = ["kvm", "kvm_intel", "kvm_amd", "kvm_pvm"]
        .into_iter()
        .filter(|m| sys_module.join(m).exists())
        .collect();
    let kind = if modules.contains(&"kvm_pvm") {
        "PVM-style KVM (kvm_pvm: guest CPL0 is paravirtual, Dune would run ring-3/pvm mode)"
    } else if modules.contains(&"kvm_intel") {
        "VT-x KVM (kvm_intel)"
    } else if modules.contains(&"kvm_amd") {
        "AMD-V KVM (kvm_amd)"
    } else if modules.is_empty() {
        "no kvm module loaded"
    } else {
        "kvm without a vendor module"
    };
    let mut s = format!("{dev}; {kind}");
    if !modules.is_empty() {
        s.push_str(&format!("; modules: {}", modules.join(", ")));
    }
    s.push_str(&format!(
        "; CPU flags: {}",
        match (vmx, svm) {
            (true, _) => "vmx",
            (_, true) => "svm",
            _ => "no vmx/svm",
        }
    ));
    if cmdline.split_whitespace().any(|w| w == "nested_pvm=1") {
        s.push_str("; kernel command line has nested_pvm=1");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu hypervisor\n";
        assert_eq!(
            cpuinfo_field(cpuinfo, "model name").as_deref(),
            Some("AMD EPYC")
        );
        assert_eq!(
            meminfo_total_bytes("MemTotal:       24576 kB\nMemFree: 1 kB\n"),
            Some(24576 * 1024)
        );
    }

    #[test]
    fn kvm_absent() {
        let s = describe_kvm(
            Path::new("/nonexistent/kvm"),
            Path::new("/nonexistent"),
            "",
            false,
            false,
        );
        assert!(s.starts_with("no /dev/kvm; no kvm module loaded"), "{s}");
    }

    #[test]
    fn file_stem_is_sanitized() {
        let m = Machine {
            hostname: "vm".to_owned(),
            cpu_model: "AMD EPYC (R)".to_owned(),
            logical_cpus: 2,
            ..Machine::default()
        };
        assert_eq!(m.file_stem(), "vm-amd-epyc-r-2cpu");
    }
}
