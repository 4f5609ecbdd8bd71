//! Sandboxes (in the detected mode, ring-3 here, or `DUNEGC_DUNE_MODE`'s): Rust closures at CPL3 under their own page-table view, every
//! syscall through a policy; escapes end in a clear outcome and the host stays intact.

use dune_hw::sandbox::{
    self as sandbox, sys, AllowAll, Config, Memory, Outcome, Sandbox, SandboxError, Syscall,
    Verdict,
};
use std::time::{Duration, Instant};

/// A sandbox, or `None` after printing why the test is skipped (no /dev/kvm). The process's
/// mode is the detected one (ring-3 on PVM hosts) or `DUNEGC_DUNE_MODE`'s.
fn sandbox(test: &str, cfg: Config) -> Option<Sandbox> {
    match Sandbox::new(cfg) {
        Ok(s) => Some(s),
        Err(e @ SandboxError::Dune(_)) => {
            if std::env::var("DUNEGC_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!("/dev/kvm required: {e}");
            }
            println!("SKIPPED {test}: {e}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

const GETPID: u64 = libc::SYS_getpid as u64;

#[test]
fn closure_runs_at_cpl3_and_exits_with_its_status() {
    let Some(mut sb) = sandbox(
        "closure_runs_at_cpl3_and_exits_with_its_status",
        Config::default(),
    ) else {
        return;
    };
    let out = sb
        .run_closure(
            move || {
                let cs: u16;
                // SAFETY: reading CS has no side effects.
                unsafe { core::arch::asm!("mov {0:x}, cs", out(reg) cs) };
                (cs & 3) as i32 + 40
            },
            &mut AllowAll,
        )
        .unwrap();
    assert_eq!(out, Outcome::Exited(43), "CPL 3 in CS");
    assert_eq!(sb.stats().syscalls, 1, "only exit_group");
}

#[test]
fn memory_allocated_in_the_arena_is_usable_and_visible_to_the_host() {
    let Some(mut sb) = sandbox(
        "memory_allocated_in_the_arena_is_usable_and_visible_to_the_host",
        Config::default(),
    ) else {
        return;
    };
    let (start, end) = sb.arena();
    let out = sb
        .run_closure(
            move || {
                let p = sys::syscall6(
                    libc::SYS_mmap as u64,
                    [
                        0,
                        8192,
                        (libc::PROT_READ | libc::PROT_WRITE) as u64,
                        (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
                        u64::MAX,
                        0,
                    ],
                );
                if p < 0 {
                    return 100;
                }
                let s = p as *mut u8;
                for i in 0..8192usize {
                    // SAFETY: the mapping just returned, 8 KiB.
                    unsafe { *s.add(i) = (i % 251) as u8 };
                }
                let msg = b"hello from the sandbox\n";
                // SAFETY: as above; msg is in host rodata, granted read-only.
                unsafe { core::ptr::copy_nonoverlapping(msg.as_ptr(), s, msg.len()) };
                (p as u64).wrapping_sub(start) as i32
            },
            &mut AllowAll,
        )
        .unwrap();
    let Outcome::Exited(off) = out else {
        panic!("{out}")
    };
    let addr = start + off as u64;
    assert!((start..end).contains(&addr), "mmap placed it in the arena");
    let arena = sb.arena_mut();
    let off = (addr - start) as usize;
    assert_eq!(&arena[off..off + 23], b"hello from the sandbox\n");
    assert_eq!(arena[off + 8000], (8000 % 251) as u8);
}

#[test]
fn policy_sees_every_call_and_deny_returns_its_errno() {
    let Some(mut sb) = sandbox(
        "policy_sees_every_call_and_deny_returns_its_errno",
        Config::default(),
    ) else {
        return;
    };
    let mut seen = Vec::new();
    let mut policy = |c: &Syscall, _m: &Memory<'_>| {
        seen.push(c.name());
        match c.nr {
            GETPID => Verdict::Deny(libc::EPERM),
            _ => Verdict::Allow,
        }
    };
    let out = sb
        .run_closure(|| sys::getpid() as i32, &mut policy)
        .unwrap();
    assert_eq!(out, Outcome::Exited(-libc::EPERM));
    assert_eq!(seen, ["getpid"], "exit_group is not the policy's");
    assert_eq!(sb.denials().len(), 1);
    assert_eq!(sb.denials()[0].syscall, "getpid");
    // allowed: forwarded to the host
    let out = sb
        .run_closure(|| sys::getpid() as i32, &mut AllowAll)
        .unwrap();
    assert_eq!(out, Outcome::Exited(std::process::id() as i32));
    // emulated
    let mut emulate = |_c: &Syscall, _m: &Memory<'_>| Verdict::Emulate(4242);
    let out = sb
        .run_closure(|| sys::getpid() as i32, &mut emulate)
        .unwrap();
    assert_eq!(out, Outcome::Exited(4242));
}

#[test]
fn kill_verdict_ends_the_run_with_a_denial() {
    let Some(mut sb) = sandbox("kill_verdict_ends_the_run_with_a_denial", Config::default()) else {
        return;
    };
    let mut policy = |c: &Syscall, _m: &Memory<'_>| {
        if c.name() == "getpid" {
            Verdict::Kill("getpid is not in the policy".into())
        } else {
            Verdict::Allow
        }
    };
    let out = sb
        .run_closure(
            || {
                sys::getpid();
                0
            },
            &mut policy,
        )
        .unwrap();
    assert_eq!(
        out,
        Outcome::Denied {
            syscall: "getpid",
            nr: GETPID,
            reason: "getpid is not in the policy".into()
        }
    );
    assert!(out.to_string().contains("killed: syscall getpid"));
}

static mut HOST_DATA: u64 = 0x1234_5678;

#[test]
fn writing_host_memory_faults_and_leaves_it_intact() {
    let Some(mut sb) = sandbox(
        "writing_host_memory_faults_and_leaves_it_intact",
        Config::default(),
    ) else {
        return;
    };
    let heap = Box::new(0xabcd_u64);
    let heap_addr = &*heap as *const u64 as u64;
    let data_addr = &raw mut HOST_DATA as u64;
    for target in [heap_addr, data_addr] {
        let out = sb
            .run_closure(
                move || {
                    // SAFETY: deliberately not granted: the view must refuse the store.
                    unsafe { core::ptr::write_volatile(target as *mut u64, 666) };
                    0
                },
                &mut AllowAll,
            )
            .unwrap();
        match out {
            Outcome::Fault {
                vector: 14,
                addr: Some(a),
                error_code,
                ..
            } => {
                assert_eq!(a, target);
                assert_ne!(error_code & 4, 0, "a user-mode access");
            }
            o => panic!("expected #PF at {target:#x}: {o}"),
        }
    }
    assert_eq!(*heap, 0xabcd);
    // SAFETY: plain read of a static nobody else writes.
    let data = unsafe { core::ptr::read_volatile(&raw const HOST_DATA) };
    assert_eq!(data, 0x1234_5678);
    // reading host data (the stack of this thread) faults too
    let local = 77u64;
    let local_addr = &local as *const u64 as u64;
    let out = sb
        .run_closure(
            move || {
                // SAFETY: deliberately not granted.
                unsafe { core::ptr::read_volatile(local_addr as *const u64) as i32 }
            },
            &mut AllowAll,
        )
        .unwrap();
    assert!(
        matches!(out, Outcome::Fault { vector: 14, addr: Some(a), .. } if a == local_addr),
        "{out}"
    );
}

#[test]
fn syscall_arguments_naming_host_memory_fail_with_efault() {
    let Some(mut sb) = sandbox(
        "syscall_arguments_naming_host_memory_fail_with_efault",
        Config::default(),
    ) else {
        return;
    };
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two fds into the array.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) };
    assert_eq!(r, 0);
    sb.allow_fd(fds[1]);
    sb.allow_fd(fds[0]);
    let secret = Box::new(*b"secret on the host heap");
    let secret_addr = secret.as_ptr() as u64;
    let (rfd, wfd) = (fds[0], fds[1]);
    let out = sb
        .run_closure(
            move || {
                // the host heap is not the sandbox's: the host must not read it for us
                let leak = sys::syscall6(1, [wfd as u64, secret_addr, 23, 0, 0, 0]);
                // rodata is granted read-only to closures: allowed
                let ok = sys::write(wfd, b"ok");
                // a descriptor the sandbox does not own
                let bad = sys::write(1000, b"x");
                // closing a lent descriptor only takes it from the sandbox
                let closed = sys::syscall6(3, [wfd as u64, 0, 0, 0, 0, 0]);
                let after = sys::write(wfd, b"x");
                if closed != 0 || after != -(libc::EBADF as i64) {
                    return 2;
                }
                // nor write host memory for us: read into the host heap
                let write_in = sys::syscall6(0, [rfd as u64, secret_addr, 2, 0, 0, 0]);
                if leak == -(libc::EFAULT as i64)
                    && ok == 2
                    && bad == -(libc::EBADF as i64)
                    && write_in == -(libc::EFAULT as i64)
                {
                    0
                } else {
                    1
                }
            },
            &mut AllowAll,
        )
        .unwrap();
    assert_eq!(out, Outcome::Exited(0));
    let mut buf = [0u8; 64];
    // SAFETY: reading into a local buffer.
    let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(
        &buf[..n as usize],
        b"ok",
        "nothing of the secret reached the pipe"
    );
    assert_eq!(
        &*secret, b"secret on the host heap",
        "nor was it overwritten"
    );
    // SAFETY: writing two bytes from a static to our pipe.
    let still_open = unsafe { libc::write(fds[1], b"ok".as_ptr().cast(), 2) };
    assert_eq!(
        still_open, 2,
        "the host's descriptor survived the sandbox's close"
    );
    // SAFETY: closing our pipe.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}

#[test]
fn privileged_instructions_fault_with_gp() {
    let Some(mut sb) = sandbox("privileged_instructions_fault_with_gp", Config::default()) else {
        return;
    };
    let out = sb
        .run_closure(
            || {
                // SAFETY: deliberately privileged at CPL3: #GP.
                unsafe { core::arch::asm!("hlt") };
                0
            },
            &mut AllowAll,
        )
        .unwrap();
    assert!(
        matches!(out, Outcome::Fault { vector: 13, .. }),
        "hlt: {out}"
    );
    let out = sb
        .run_closure(
            || {
                // SAFETY: deliberately privileged: writing CR3 at CPL3 is #GP.
                unsafe { core::arch::asm!("xor eax, eax", "mov cr3, rax", out("rax") _) };
                0
            },
            &mut AllowAll,
        )
        .unwrap();
    assert!(
        matches!(out, Outcome::Fault { vector: 13, .. }),
        "mov cr3: {out}"
    );
}

#[test]
fn memory_exhaustion_is_a_clear_enomem() {
    let Some(mut sb) = sandbox(
        "memory_exhaustion_is_a_clear_enomem",
        Config {
            arena_bytes: 8 << 20,
            stack_bytes: 256 << 10,
            ..Config::default()
        },
    ) else {
        return;
    };
    let out = sb
        .run_closure(
            || {
                let mut n = 0;
                loop {
                    let p = sys::syscall6(
                        libc::SYS_mmap as u64,
                        [
                            0,
                            1 << 20,
                            (libc::PROT_READ | libc::PROT_WRITE) as u64,
                            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
                            u64::MAX,
                            0,
                        ],
                    );
                    if p == -(libc::ENOMEM as i64) {
                        return n;
                    }
                    if p < 0 {
                        return -1;
                    }
                    // SAFETY: touch the new megabyte.
                    unsafe { core::ptr::write_volatile((p + 4096) as *mut u8, 1) };
                    n += 1;
                }
            },
            &mut AllowAll,
        )
        .unwrap();
    let Outcome::Exited(n) = out else {
        panic!("{out}")
    };
    assert!((5..8).contains(&n), "{n} MiB fit in an 8 MiB arena");
    let d = sb.denials().last().expect("the refusal is recorded");
    assert_eq!(d.syscall, "mmap");
    assert_eq!(d.errno, libc::ENOMEM);
    assert!(d.reason.contains("memory limit"), "{}", d.reason);
}

#[test]
fn a_run_that_never_ends_times_out() {
    let Some(mut sb) = sandbox(
        "a_run_that_never_ends_times_out",
        Config {
            timeout: Some(Duration::from_millis(200)),
            ..Config::default()
        },
    ) else {
        return;
    };
    let t = Instant::now();
    let out = sb
        .run_closure(
            || loop {
                core::hint::spin_loop()
            },
            &mut AllowAll,
        )
        .unwrap();
    assert_eq!(
        out,
        Outcome::Timeout {
            after: Duration::from_millis(200)
        }
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // the sandbox is usable again afterwards, and a quick run does not time out
    let out = sb.run_closure(|| 5, &mut AllowAll).unwrap();
    assert_eq!(out, Outcome::Exited(5));
}

#[test]
fn a_dune_thread_runs_sandboxes_through_its_monitor() {
    let Some(mut sb) = sandbox(
        "a_dune_thread_runs_sandboxes_through_its_monitor",
        Config::default(),
    ) else {
        return;
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            dune_hw::enter().unwrap();
            assert!(dune_hw::in_dune());
            let mut calls = 0;
            let mut policy = |_c: &Syscall, _m: &Memory<'_>| {
                calls += 1;
                Verdict::Allow
            };
            let out = sb.run_closure(|| sys::getpid() as i32, &mut policy);
            let fault = sb.run_closure(
                || {
                    // SAFETY: deliberately privileged.
                    unsafe { core::arch::asm!("cli") };
                    0
                },
                &mut AllowAll,
            );
            dune_hw::exit().unwrap();
            assert_eq!(out.unwrap(), Outcome::Exited(std::process::id() as i32));
            assert_eq!(calls, 1);
            assert!(matches!(fault.unwrap(), Outcome::Fault { vector: 13, .. }));
        });
    });
}

#[test]
fn a_syscall_with_a_stack_outside_the_sandbox_ends_cleanly() {
    let Some(mut sb) = sandbox(
        "a_syscall_with_a_stack_outside_the_sandbox_ends_cleanly",
        Config {
            timeout: Some(Duration::from_secs(2)),
            ..Config::default()
        },
    ) else {
        return;
    };
    let host = Box::new(0x5555_u64);
    let host_addr = &*host as *const u64 as u64 + 512;
    for rsp in [0x1000u64, host_addr] {
        let out = sb
            .run_closure(
                move || {
                    // SAFETY: deliberately hostile: the syscall stub must push the return
                    // address onto this stack, which the view does not map.
                    unsafe {
                        core::arch::asm!(
                            "mov rsp, {rsp}",
                            "mov eax, 39",
                            "syscall",
                            "ud2",
                            rsp = in(reg) rsp,
                            options(noreturn)
                        )
                    }
                },
                &mut AllowAll,
            )
            .unwrap();
        println!("rsp {rsp:#x}: {out}");
        assert!(matches!(out, Outcome::Fault { .. }), "rsp {rsp:#x}: {out}");
    }
    assert_eq!(*host, 0x5555);
}

#[test]
fn opening_files_follows_no_symlink_and_has_a_limit() {
    let Some(mut sb) = sandbox(
        "opening_files_follows_no_symlink_and_has_a_limit",
        Config {
            max_open_files: 2,
            ..Config::default()
        },
    ) else {
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("sandbox-symlink");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("plain"), "plain file").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).unwrap();
    // the paths go into the lowest page of the sandbox's stack (mapped read-write there);
    // the closure captures only their addresses (a large closure would be copied with
    // libc's memcpy, which reads libc's writable data: not granted)
    let (start, end) = sb.arena();
    let low = end - Config::default().stack_bytes;
    let mut put = |at: u64, name: &str| {
        let p = dir.join(name);
        let bytes = p.as_os_str().as_encoded_bytes();
        let off = (at - start) as usize;
        let arena = sb.arena_mut();
        arena[off..off + bytes.len()].copy_from_slice(bytes);
        arena[off + bytes.len()] = 0;
        at
    };
    let (plain, link) = (put(low, "plain"), put(low + 2048, "link"));
    let out = sb
        .run_closure(
            move || {
                let open = |p: u64| {
                    sys::syscall6(
                        libc::SYS_openat as u64,
                        [libc::AT_FDCWD as u64, p, 0, 0, 0, 0],
                    )
                };
                let fd = open(plain);
                let via_link = open(link);
                if fd < 0 || via_link != -(libc::ELOOP as i64) {
                    return 1;
                }
                // the open-file limit (2 here): one more open, then EMFILE
                let second = open(plain);
                let third = open(plain);
                if second >= 0 && third == -(libc::EMFILE as i64) {
                    0
                } else {
                    2
                }
            },
            &mut AllowAll,
        )
        .unwrap();
    assert_eq!(
        out,
        Outcome::Exited(0),
        "the plain file opens, the symlink does not"
    );
}

#[test]
fn a_code_region_runs_and_granted_host_memory_is_shared() {
    let Some(mut sb) = sandbox(
        "a_code_region_runs_and_granted_host_memory_is_shared",
        Config::default(),
    ) else {
        return;
    };
    // host memory granted read-write: the code stores into it, the host sees the store
    // SAFETY: a fresh anonymous page (grants are whole pages: no host data shares it).
    let page = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    let shared_addr = page as u64;
    // SAFETY: the page stays mapped while the sandbox lives (it is never unmapped) and no
    // reference into it exists (it is only read after `run` returned).
    unsafe { sb.grant(shared_addr, 4096, sandbox::Access::ReadWrite) }.unwrap();
    // code: movabs rax, shared; mov qword [rax], 0x5a; mov eax, 231; mov edi, 9; syscall
    let mut code = vec![0x48, 0xb8];
    code.extend_from_slice(&shared_addr.to_le_bytes());
    code.extend_from_slice(&[0x48, 0xc7, 0x00, 0x5a, 0, 0, 0]);
    code.extend_from_slice(&[0xb8, 231, 0, 0, 0, 0xbf, 9, 0, 0, 0, 0x0f, 0x05]);
    let (start, _) = sb.arena();
    sb.arena_mut()[..code.len()].copy_from_slice(&code);
    sb.map_image(start, start + 4096, libc::PROT_READ | libc::PROT_EXEC)
        .unwrap();
    let entry = sandbox::Entry {
        rip: start,
        rsp: sb.stack_top() - 8,
        args: [0; 3],
    };
    let out = sb.run(entry, &mut AllowAll).unwrap();
    assert_eq!(out, Outcome::Exited(9));
    // SAFETY: plain read after the run.
    let v = unsafe { core::ptr::read_volatile(shared_addr as *const u64) };
    assert_eq!(v, 0x5a);
    // the image is not writable from inside: a store to its own code faults
    let mut code2 = vec![0x48, 0xb8];
    code2.extend_from_slice(&start.to_le_bytes());
    code2.extend_from_slice(&[0x48, 0xc7, 0x00, 0x5a, 0, 0, 0, 0x0f, 0x0b]);
    sb.arena_mut()[..code2.len()].copy_from_slice(&code2);
    let out = sb.run(entry, &mut AllowAll).unwrap();
    assert!(
        matches!(out, Outcome::Fault { vector: 14, addr: Some(a), .. } if a == start),
        "{out}"
    );
}
