//! Static programs (compiled here with gcc from `tests/programs/`) in the sandbox: one
//! the policy allows (prints, allocates, writes a file) and escape attempts, each ending
//! in a clear denial while the host process and its data stay intact.

use dune_hw::sandbox::{Outcome, SandboxError};
use dune_sandbox::elf::ElfError;
use dune_sandbox::{run_program, FilePolicy, Report, RunOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const PROGRAMS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/programs");
const TMP: &str = env!("CARGO_TARGET_TMPDIR");
const EXE: &str = env!("CARGO_BIN_EXE_dune-sandbox");

/// Compiles `tests/programs/<src>` into the target tmp dir (once per test binary).
fn build(src: &str, flags: &[&str]) -> PathBuf {
    let out = Path::new(TMP).join(format!("sandbox-{}", src.replace('.', "-")));
    let st = Command::new("gcc")
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(Path::new(PROGRAMS).join(src))
        .status()
        .unwrap_or_else(|e| panic!("gcc is needed to build the test programs: {e}"));
    assert!(
        st.success(),
        "gcc {src} failed (static glibc: scripts/setup.sh)"
    );
    out
}

fn programs() -> &'static [PathBuf; 7] {
    static P: OnceLock<[PathBuf; 7]> = OnceLock::new();
    P.get_or_init(|| {
        // static-pie programs load anywhere (several run at once in this process); hello
        // and tiny are linked at a fixed address (ET_EXEC), one at a time (FIXED lock)
        let pie = ["-O1", "-static-pie"];
        [
            build("hello.c", &["-O1", "-static", "-no-pie"]),
            build("escape_write.c", &pie),
            build("privileged.c", &pie),
            build("forge.c", &pie),
            build("hog.c", &pie),
            build("tiny.S", &["-static", "-nostdlib", "-no-pie"]),
            build("spin.c", &pie),
        ]
    })
}

/// Held while a fixed-address (ET_EXEC) program runs in this process.
static FIXED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn base_policy() -> String {
    std::fs::read_to_string(Path::new(PROGRAMS).join("hello.policy")).unwrap()
}

/// Runs a program with the library API; `None` if skipped (no /dev/kvm).
fn run(test: &str, prog: &Path, args: &[&str], policy: &str, opts: RunOptions) -> Option<Report> {
    let mut policy = FilePolicy::parse(policy).unwrap();
    let argv: Vec<&[u8]> = std::iter::once(prog.to_str().unwrap().as_bytes())
        .chain(args.iter().map(|a| a.as_bytes()))
        .collect();
    match run_program(prog, &argv, &mut policy, &opts) {
        Ok(r) => Some(r),
        Err(ElfError::Sandbox(e @ SandboxError::Dune(_))) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("/dev/kvm required: {e}");
            }
            println!("SKIPPED {test}: {e}");
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}

#[test]
fn allowed_program_prints_and_writes_its_file() {
    let p = &programs()[0];
    let out_file = Path::new(TMP).join("sandbox-hello-output.txt");
    let _ = std::fs::remove_file(&out_file);
    let policy = format!("{}\nwrite {TMP}\n", base_policy());
    let policy_file = Path::new(TMP).join("sandbox-hello.policy");
    std::fs::write(&policy_file, &policy).unwrap();
    // the command, end to end
    let o = Command::new(EXE)
        .arg("--policy")
        .arg(&policy_file)
        .arg(p)
        .arg(&out_file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    if stderr.contains("/dev/kvm") && std::env::var("DUNEGC_REQUIRE_KVM").as_deref() != Ok("1") {
        println!("SKIPPED allowed_program_prints_and_writes_its_file: {stderr}");
        return;
    }
    assert_eq!(o.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "hello from a sandboxed static program (2 args)\n"
    );
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap(),
        "written by a sandboxed program: x\n"
    );
    // the same with the library: the program's own denials are the core's ENOSYS only
    let _fixed = FIXED.lock().unwrap_or_else(|p| p.into_inner());
    let r = run(
        "allowed_program_prints_and_writes_its_file",
        p,
        &[],
        &policy,
        RunOptions::default(),
    )
    .unwrap();
    assert_eq!(r.outcome, Outcome::Exited(0));
    assert!(
        r.denials.iter().all(|d| d.errno == libc::ENOSYS),
        "{:?}",
        r.denials
    );
}

#[test]
fn a_program_without_libc_runs() {
    let _fixed = FIXED.lock().unwrap_or_else(|p| p.into_inner());
    let Some(r) = run(
        "a_program_without_libc_runs",
        &programs()[5],
        &[],
        "allow write",
        RunOptions::default(),
    ) else {
        return;
    };
    assert_eq!(r.outcome, Outcome::Exited(7));
    assert_eq!(r.syscalls, 2);
}

#[test]
fn writing_outside_granted_memory_is_a_fault_and_the_host_is_intact() {
    let victim = Box::new(0x1122_3344_u64);
    let addr = format!("{:x}", &*victim as *const u64 as u64);
    let Some(r) = run(
        "writing_outside_granted_memory_is_a_fault_and_the_host_is_intact",
        &programs()[1],
        &[&addr],
        &base_policy(),
        RunOptions::default(),
    ) else {
        return;
    };
    match r.outcome {
        Outcome::Fault {
            vector: 14,
            addr: Some(a),
            what,
            ..
        } => {
            assert_eq!(a, &*victim as *const u64 as u64);
            assert!(what.contains("write outside"), "{what}");
        }
        o => panic!("expected a #PF: {o}"),
    }
    assert_eq!(r.exit_status(), 139);
    assert_eq!(*victim, 0x1122_3344, "host data intact");
}

#[test]
fn privileged_instructions_are_refused() {
    for insn in ["cli", "hlt", "cr3"] {
        let Some(r) = run(
            "privileged_instructions_are_refused",
            &programs()[2],
            &[insn],
            &base_policy(),
            RunOptions::default(),
        ) else {
            return;
        };
        assert!(
            matches!(r.outcome, Outcome::Fault { vector: 13, .. }),
            "{insn}: {}",
            r.outcome
        );
    }
}

#[test]
fn calls_the_policy_denies_end_the_run() {
    let p = &programs()[3];
    let Some(r) = run(
        "calls_the_policy_denies_end_the_run",
        p,
        &["kill"],
        &base_policy(),
        RunOptions::default(),
    ) else {
        return;
    };
    assert_eq!(
        r.outcome,
        Outcome::Denied {
            syscall: "kill",
            nr: 62,
            reason: "syscall kill is not allowed by the policy".into()
        }
    );
    assert_eq!(r.exit_status(), 159);
    let r = run(
        "calls_the_policy_denies_end_the_run",
        p,
        &["execve"],
        &base_policy(),
        RunOptions::default(),
    )
    .unwrap();
    assert!(
        matches!(
            r.outcome,
            Outcome::Denied {
                syscall: "execve",
                ..
            }
        ),
        "{}",
        r.outcome
    );
    // a path outside the policy: killed, or EACCES with `default errno`
    let r = run(
        "calls_the_policy_denies_end_the_run",
        p,
        &["open"],
        &base_policy(),
        RunOptions::default(),
    )
    .unwrap();
    match &r.outcome {
        Outcome::Denied {
            syscall: "openat",
            reason,
            ..
        } => {
            assert!(
                reason.contains("`/etc/passwd` for reading is outside"),
                "{reason}"
            )
        }
        o => panic!("{o}"),
    }
    // an explicit answer: `deny` with an errno, the program goes on
    let denied = format!("{}\nallow kill\ndeny kill EPERM\n", base_policy());
    let r = run(
        "calls_the_policy_denies_end_the_run",
        p,
        &["kill"],
        &denied,
        RunOptions::default(),
    )
    .unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Exited(-libc::EPERM),
        "kill returned -EPERM"
    );
    // `emulate`: the call returns the value, nothing runs
    let emulated = format!("{}\nemulate kill 77\n", base_policy());
    let r = run(
        "calls_the_policy_denies_end_the_run",
        p,
        &["kill"],
        &emulated,
        RunOptions::default(),
    )
    .unwrap();
    assert_eq!(r.outcome, Outcome::Exited(77));
    let lenient = format!("{}\ndefault errno EACCES\n", base_policy());
    let r = run(
        "calls_the_policy_denies_end_the_run",
        p,
        &["open"],
        &lenient,
        RunOptions::default(),
    )
    .unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Exited(42),
        "open failed, program went on"
    );
    assert!(r
        .denials
        .iter()
        .any(|d| d.syscall == "openat" && d.errno == libc::EACCES));
    // the command prints the denial
    let policy_file = Path::new(TMP).join("sandbox-base.policy");
    std::fs::write(&policy_file, base_policy()).unwrap();
    let o = Command::new(EXE)
        .arg("--policy")
        .arg(&policy_file)
        .arg(p)
        .arg("kill")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(159), "{stderr}");
    assert!(
        stderr.contains("killed: syscall kill (62) denied"),
        "{stderr}"
    );
}

#[test]
fn exhausting_memory_is_a_clear_enomem() {
    let Some(r) = run(
        "exhausting_memory_is_a_clear_enomem",
        &programs()[4],
        &[],
        &base_policy(),
        RunOptions {
            memory_bytes: 32 << 20,
            ..RunOptions::default()
        },
    ) else {
        return;
    };
    assert_eq!(r.outcome, Outcome::Exited(3), "malloc returned NULL");
    let d = r
        .denials
        .iter()
        .find(|d| d.errno == libc::ENOMEM)
        .expect("the refusal is recorded");
    assert!(d.reason.contains("memory limit"), "{}", d.reason);
}

#[test]
fn a_program_that_spins_times_out() {
    let t = std::time::Instant::now();
    let Some(r) = run(
        "a_program_that_spins_times_out",
        &programs()[6],
        &[],
        &base_policy(),
        RunOptions {
            timeout: Some(std::time::Duration::from_millis(100)),
            ..RunOptions::default()
        },
    ) else {
        return;
    };
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    assert!(
        matches!(r.outcome, Outcome::Timeout { .. }),
        "{}",
        r.outcome
    );
    assert_eq!(r.exit_status(), 124);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let run_cmd = |args: &[&str]| {
        let o = Command::new(EXE).args(args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let not_elf = Path::new(TMP).join("sandbox-not-elf.sh");
    std::fs::write(&not_elf, "#!/bin/sh\necho hi\n").unwrap();
    let (c, e) = run_cmd(&[not_elf.to_str().unwrap()]);
    assert_eq!(c, Some(2));
    assert!(e.contains("not a usable ELF file: no ELF magic"), "{e}");
    let (c, e) = run_cmd(&["/bin/true"]);
    assert_eq!(c, Some(2));
    assert!(e.contains("dynamically linked"), "{e}");
    let bad_policy = Path::new(TMP).join("sandbox-bad.policy");
    std::fs::write(&bad_policy, "allow write\nallow fly\n").unwrap();
    let (c, e) = run_cmd(&["--policy", bad_policy.to_str().unwrap(), "/bin/true"]);
    assert_eq!(c, Some(2));
    assert!(e.contains("policy line 2: unknown syscall `fly`"), "{e}");
    let (c, e) = run_cmd(&["--memory-mib"]);
    assert_eq!(c, Some(2));
    assert!(e.contains("needs a number"), "{e}");
    let (c, e) = run_cmd(&["/no/such/program"]);
    assert_eq!(c, Some(2));
    assert!(e.contains("cannot read /no/such/program"), "{e}");
}

#[test]
fn the_command_runs_in_ring0_mode_too() {
    let o = Command::new(EXE)
        .args(["--mode", "ring0", "--verbose"])
        .arg(&programs()[5])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    if stderr.contains("/dev/kvm") && std::env::var("DUNEGC_REQUIRE_KVM").as_deref() != Ok("1") {
        println!("SKIPPED the_command_runs_in_ring0_mode_too: {stderr}");
        return;
    }
    // the default policy (no file) allows only exit_group: write is refused, killed
    assert_eq!(o.status.code(), Some(159), "{stderr}");
    assert!(
        stderr.contains("killed: syscall write (1) denied"),
        "{stderr}"
    );
    assert!(o.stdout.is_empty());
}
