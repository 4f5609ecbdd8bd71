//! Escape attempts from sthreads, each ending in its documented outcome (lib.rs table)
//! while the parent's data stays intact. Run in every Dune mode by scripts/test.sh
//! (the default pvm, then ring3 and pvm-ring0); SKIPPED where /dev/kvm is missing.

mod common;

use privsep::inside::{callgate_call, sthread_spawn};
use privsep::{
    callgate_create, smalloc, sthread_create, sthread_run, tag_new, ChildRequest, Ended, FaultKind,
    FdRights, PrivsepError, Recycler, Rights, SPolicy, Tag, TagRef, Violation,
};

const SECRET: u64 = 0x5ec2_e7c0_ffee_d00d;

/// A tag holding SECRET (the parent's private data) and the secret's address.
fn secret() -> (Tag, u64) {
    let t = tag_new(4096).unwrap();
    let p = smalloc(&t, 8).unwrap().as_ptr() as *mut u64;
    // SAFETY: 8 bytes just allocated in the live tag; no sthread holds it.
    unsafe { p.write_volatile(SECRET) };
    (t, p as u64)
}

fn intact(addr: u64) {
    // SAFETY: the secret's address in a tag the test keeps alive.
    assert_eq!(unsafe { (addr as *const u64).read_volatile() }, SECRET);
}

fn read_at(a: u64) -> i32 {
    // SAFETY: deliberately any address: outside the view it must fault.
    unsafe { (a as *const u64).read_volatile() as i32 }
}

fn write_at(a: u64) -> i32 {
    // SAFETY: as in read_at, for a store.
    unsafe { (a as *mut u64).write_volatile(0x666) };
    0
}

fn exec_at(a: u64) -> i32 {
    // SAFETY: deliberately jumps to a data address: must fault on the fetch.
    let f = unsafe { core::mem::transmute::<u64, fn() -> i32>(a) };
    f()
}

fn expect_fault(r: &privsep::Report, kind: FaultKind, addr: u64, tag: Option<u64>) {
    match &r.ended {
        Ended::Fault {
            kind: k,
            addr: Some(a),
            in_tag,
            ..
        } => {
            assert_eq!(*k, kind, "{}", r.ended);
            assert_eq!(*a, addr, "{}", r.ended);
            assert_eq!(*in_tag, tag, "{}", r.ended);
        }
        e => panic!("expected a {kind:?} fault at {addr:#x}, got: {e}"),
    }
    assert!(matches!(r.check(), Err(PrivsepError::Fault { .. })));
}

#[test]
fn reading_writing_executing_outside_the_tags_faults_and_the_parent_survives() {
    if !common::dune_available("reading_writing_executing_outside_the_tags_faults") {
        return;
    }
    let (key, key_addr) = secret();
    let mine = tag_new(4096).unwrap();
    let shared = tag_new(4096).unwrap();
    let m = smalloc(&mine, 8).unwrap().as_ptr() as u64;
    let s = smalloc(&shared, 8).unwrap().as_ptr() as u64;
    // SAFETY: fresh allocations in live tags; no sthread runs yet.
    unsafe { (s as *mut u64).write_volatile(77) };
    let mut p = SPolicy::new();
    p.grant_tag(&mine, Rights::ReadWrite)
        .grant_tag(&shared, Rights::Read);
    // what it holds works
    assert_eq!(sthread_run(&p, write_at, m).unwrap().check().unwrap(), 0);
    // SAFETY: the sthread ended; the allocation is live.
    assert_eq!(unsafe { (m as *const u64).read_volatile() }, 0x666);
    assert_eq!(sthread_run(&p, read_at, s).unwrap().check().unwrap(), 77);
    // another tag's memory is absent
    let r = sthread_run(&p, read_at, key_addr).unwrap();
    expect_fault(&r, FaultKind::Read, key_addr, Some(key.id()));
    intact(key_addr);
    let r = sthread_run(&p, write_at, key_addr).unwrap();
    expect_fault(&r, FaultKind::Write, key_addr, Some(key.id()));
    intact(key_addr);
    let r = sthread_run(&p, exec_at, key_addr).unwrap();
    expect_fault(&r, FaultKind::Execute, key_addr, Some(key.id()));
    intact(key_addr);
    // read-only tags are read-only; read-write tags are not executable
    let r = sthread_run(&p, write_at, s).unwrap();
    expect_fault(&r, FaultKind::Write, s, Some(shared.id()));
    // SAFETY: live allocation, sthread ended.
    assert_eq!(unsafe { (s as *const u64).read_volatile() }, 77);
    let r = sthread_run(&p, exec_at, m).unwrap();
    expect_fault(&r, FaultKind::Execute, m, Some(mine.id()));
    // the parent's heap and stack are no tag at all
    let heap = Box::new(SECRET);
    let h = &*heap as *const u64 as u64;
    let r = sthread_run(&p, read_at, h).unwrap();
    expect_fault(&r, FaultKind::Read, h, None);
    let r = sthread_run(&p, write_at, h).unwrap();
    expect_fault(&r, FaultKind::Write, h, None);
    assert_eq!(*heap, SECRET);
    intact(key_addr);
}

fn sign(trusted: u64, arg: u64) -> i32 {
    // SAFETY: `trusted` is the key's address, which the gate's view maps read-only.
    let key = unsafe { (trusted as *const u64).read_volatile() };
    ((key ^ arg) & 0x7fff_ffff) as i32
}

fn call_gate(id: u64) -> i32 {
    callgate_call(id, 5) as i32
}

fn call_entry_directly(key_addr: u64) -> i32 {
    // the caller jumps to the entry itself with a forged trusted argument
    sign(key_addr, 5)
}

#[test]
fn callgates_run_with_their_own_rights_and_cannot_be_forged() {
    if !common::dune_available("callgates_run_with_their_own_rights_and_cannot_be_forged") {
        return;
    }
    let (key, key_addr) = secret();
    let mut gp = SPolicy::new();
    gp.grant_tag(&key, Rights::Read);
    let gate = callgate_create(sign, &gp, key_addr).unwrap();
    let other = callgate_create(sign, &gp, key_addr).unwrap();
    let mut p = SPolicy::new();
    p.allow_gate(&gate);
    let want = ((SECRET ^ 5) & 0x7fff_ffff) as i32;
    // a granted gate runs its entry with the trusted argument, the caller's argument
    let r = sthread_run(&p, call_gate, gate.id()).unwrap();
    assert_eq!(r.check().unwrap(), want);
    // twice (its sandbox is recycled)
    assert_eq!(
        sthread_run(&p, call_gate, gate.id()).unwrap().ended,
        Ended::Exited(want)
    );
    // a gate not in the policy, or an id that names no gate: EPERM, recorded
    for id in [other.id(), 0xdead_beef] {
        let r = sthread_run(&p, call_gate, id).unwrap();
        assert_eq!(r.ended, Ended::Exited(-libc::EPERM));
        assert_eq!(r.violations, [Violation::ForgedGate { id }]);
        assert!(matches!(
            r.check(),
            Err(PrivsepError::PolicyViolation { .. })
        ));
    }
    // jumping to the entry with a forged trusted argument runs it with the caller's
    // rights: the key is not in the caller's view
    let r = sthread_run(&p, call_entry_directly, key_addr).unwrap();
    expect_fault(&r, FaultKind::Read, key_addr, Some(key.id()));
    intact(key_addr);
    // the host calls gates the same way
    assert_eq!(gate.call(5).unwrap().ended, Ended::Exited(want));
}

fn child_reads(a: u64) -> i32 {
    // SAFETY: reads what the child was granted (or faults).
    unsafe { (a as *const u8).read_volatile() as i32 }
}

fn spawn(req: u64) -> i32 {
    // SAFETY: `req` is a ChildRequest in a tag this sthread holds.
    sthread_spawn(unsafe { &*(req as *const ChildRequest) }) as i32
}

fn escalate_then_spawn(req: u64) -> i32 {
    // SAFETY: the request lies in this sthread's read-write tag: it edits it.
    unsafe { (*(req as *mut ChildRequest)).tags[0][1] = Rights::ReadWrite as u64 };
    spawn(req)
}

#[test]
fn a_child_gets_at_most_its_parents_rights() {
    if !common::dune_available("a_child_gets_at_most_its_parents_rights") {
        return;
    }
    let (key, key_addr) = secret();
    let data = tag_new(4096).unwrap();
    let d = smalloc(&data, 8).unwrap().as_ptr();
    // SAFETY: fresh allocation.
    unsafe { d.write_volatile(42) };
    let reqs = tag_new(16 << 10).unwrap();
    let mut p = SPolicy::new();
    p.grant_tag(&data, Rights::Read)
        .grant_tag(&reqs, Rights::ReadWrite);
    p.allow_syscall(libc::SYS_getpid).unwrap();
    let place = |req: ChildRequest| -> u64 {
        let at = smalloc(&reqs, core::mem::size_of::<ChildRequest>() as u64)
            .unwrap()
            .as_ptr() as *mut ChildRequest;
        // SAFETY: a fresh allocation of the request's size, 16-byte aligned.
        unsafe { at.write(req) };
        at as u64
    };
    let dref = data.handle();
    let base = |arg: u64| {
        let mut r = ChildRequest::new(child_reads, arg);
        r.tag(dref, Rights::Read);
        r
    };
    // within the parent's rights: runs
    let r = sthread_run(&p, spawn, place(base(d as u64))).unwrap();
    assert_eq!(r.check().unwrap(), 42);
    // more rights on a tag, a syscall, an fd the parent lacks: EPERM
    let mut rw = ChildRequest::new(child_reads, d as u64);
    rw.tag(dref, Rights::ReadWrite);
    let mut sys = base(d as u64);
    sys.syscall(libc::SYS_write as u64);
    let mut fd = base(d as u64);
    fd.fd(1, FdRights::WRITE);
    for req in [rw, sys, fd] {
        let r = sthread_run(&p, spawn, place(req)).unwrap();
        assert_eq!(r.ended, Ended::Exited(-libc::EPERM), "{req:?}");
        assert!(
            matches!(&r.violations[..], [Violation::ChildRefused { what }] if what.contains("rights escalation")),
            "{:?}",
            r.violations
        );
    }
    // the sthread edits its request to escalate after the parent built it: EPERM too
    let r = sthread_run(&p, escalate_then_spawn, place(base(d as u64))).unwrap();
    assert_eq!(r.ended, Ended::Exited(-libc::EPERM));
    // naming a tag the parent does not hold (the key): EINVAL, invalid tag
    let mut k = ChildRequest::new(child_reads, key_addr);
    k.tag(key.handle(), Rights::Read);
    let r = sthread_run(&p, spawn, place(k)).unwrap();
    assert_eq!(r.ended, Ended::Exited(-libc::EINVAL));
    assert!(
        matches!(&r.violations[..], [Violation::ChildRefused { what }] if what.contains("invalid tag"))
    );
    // a child reading beyond its own grant faults; the parent sthread gets EFAULT
    let r = sthread_run(&p, spawn, place(base(key_addr))).unwrap();
    assert_eq!(r.ended, Ended::Exited(-libc::EFAULT));
    assert!(matches!(
        &r.violations[..],
        [Violation::Nested { what: "child", ended: Ended::Fault { kind: FaultKind::Read, in_tag: Some(t), .. } }] if *t == key.id()
    ));
    intact(key_addr);
    // SAFETY: live allocation.
    assert_eq!(unsafe { d.read_volatile() }, 42);
}

fn getppid(_: u64) -> i32 {
    dune_hw::sandbox::sys::syscall6(libc::SYS_getppid as u64, [0; 6]) as i32
}

fn getpid(_: u64) -> i32 {
    dune_hw::sandbox::sys::getpid() as i32
}

fn write_hi(fd: u64) -> i32 {
    dune_hw::sandbox::sys::write(fd as i32, b"hi") as i32
}

fn read_one(fd: u64) -> i32 {
    let r = dune_hw::sandbox::sys::syscall6(
        libc::SYS_read as u64,
        [fd, b"x".as_ptr() as u64, 1, 0, 0, 0],
    );
    r as i32
}

#[test]
fn disallowed_syscalls_end_the_sthread_and_fds_outside_the_grant_fail() {
    if !common::dune_available("disallowed_syscalls_end_the_sthread") {
        return;
    }
    let (_key, key_addr) = secret();
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two fds into the array.
    let piped = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) };
    assert_eq!(piped, 0);
    let (rfd, wfd) = (fds[0], fds[1]);
    let mut p = SPolicy::new();
    p.allow_syscall(libc::SYS_getpid).unwrap();
    p.allow_syscall(libc::SYS_write).unwrap();
    p.allow_syscall(libc::SYS_read).unwrap();
    p.grant_fd(wfd, FdRights::WRITE)
        .grant_fd(rfd, FdRights::READ);
    assert_eq!(
        sthread_run(&p, getpid, 0).unwrap().check().unwrap(),
        std::process::id() as i32
    );
    let r = sthread_run(&p, getppid, 0).unwrap();
    assert!(
        matches!(
            r.ended,
            Ended::Killed {
                syscall: "getppid",
                ..
            }
        ),
        "{}",
        r.ended
    );
    assert_eq!(
        r.violations,
        [Violation::Syscall {
            name: "getppid",
            nr: libc::SYS_getppid as u64
        }]
    );
    assert!(matches!(
        r.check(),
        Err(PrivsepError::PolicyViolation { .. })
    ));
    // granted with the right: works, the parent reads what it wrote
    assert_eq!(
        sthread_run(&p, write_hi, wfd as u64)
            .unwrap()
            .check()
            .unwrap(),
        2
    );
    let mut buf = [0u8; 8];
    // SAFETY: reads into a local buffer.
    let n = unsafe { libc::read(rfd, buf.as_mut_ptr().cast(), 8) };
    assert_eq!(&buf[..n as usize], b"hi");
    // stdout (not granted), the read end for writing, the write end for reading: EBADF
    for (f, fd) in [
        (write_hi as fn(u64) -> i32, 1),
        (write_hi, rfd),
        (read_one, wfd),
    ] {
        let r = sthread_run(&p, f, fd as u64).unwrap();
        assert_eq!(r.ended, Ended::Exited(-libc::EBADF), "fd {fd}");
        assert!(matches!(r.violations[..], [Violation::Fd { fd: x, .. }] if x == fd as u64));
    }
    // SAFETY: reads into a local buffer (non-blocking: nothing more was written).
    assert!(unsafe { libc::read(rfd, buf.as_mut_ptr().cast(), 8) } < 0);
    intact(key_addr);
    // SAFETY: our pipe.
    unsafe { libc::close(rfd) };
    // SAFETY: our pipe.
    unsafe { libc::close(wfd) };
}

fn load_cr3(root: u64) -> i32 {
    // SAFETY: deliberately privileged at CPL3: #GP.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) root) };
    0
}

fn read_cr3(_: u64) -> i32 {
    let v: u64;
    // SAFETY: deliberately privileged at CPL3: #GP.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) v) };
    v as i32
}

#[test]
fn an_sthread_cannot_touch_its_page_table_or_cr3() {
    if !common::dune_available("an_sthread_cannot_touch_its_page_table_or_cr3") {
        return;
    }
    let (_key, key_addr) = secret();
    let mut r = Recycler::new(&SPolicy::new()).unwrap();
    let (root, (start, end)) = r.view_table();
    assert!((start..end).contains(&root));
    for f in [load_cr3 as fn(u64) -> i32, read_cr3] {
        let rep = r.run(f, root).unwrap();
        assert!(
            matches!(
                rep.ended,
                Ended::Fault {
                    kind: FaultKind::Privileged,
                    ..
                }
            ),
            "{}",
            rep.ended
        );
    }
    let rep = r.run(write_at, root).unwrap();
    expect_fault(&rep, FaultKind::Write, root, None);
    let rep = r.run(read_at, start).unwrap();
    expect_fault(&rep, FaultKind::Read, start, None);
    // the view still works afterwards
    assert_eq!(
        r.run(|x| x as i32 + 1, 41).unwrap().ended,
        Ended::Exited(42)
    );
    intact(key_addr);
}

fn leave_marker(out: u64) -> i32 {
    let local = core::hint::black_box([0x7777_7777_u64; 4]);
    // SAFETY: `out` is an 8-byte slot in this sthread's read-write tag.
    unsafe { (out as *mut u64).write_volatile(local.as_ptr() as u64) };
    core::hint::black_box(&local);
    1
}

fn read_stack(out: u64) -> i32 {
    // SAFETY: reads the slot, then the address the previous run left there (its stack,
    // which is this run's stack too).
    unsafe { ((out as *const u64).read_volatile() as *const u64).read_volatile() as i32 }
}

#[test]
fn recycled_sthreads_start_from_a_zeroed_stack() {
    if !common::dune_available("recycled_sthreads_start_from_a_zeroed_stack") {
        return;
    }
    let t = tag_new(4096).unwrap();
    let slot = smalloc(&t, 8).unwrap().as_ptr() as u64;
    let mut p = SPolicy::new();
    p.grant_tag(&t, Rights::ReadWrite);
    let mut r = Recycler::new(&p).unwrap();
    assert_eq!(r.run(leave_marker, slot).unwrap().ended, Ended::Exited(1));
    assert_eq!(r.run(read_stack, slot).unwrap().ended, Ended::Exited(0));
    for _ in 0..50 {
        assert_eq!(r.run(leave_marker, slot).unwrap().ended, Ended::Exited(1));
    }
    assert_eq!(r.runs(), 52);
}

fn alloc_inside(tag_base: u64) -> i32 {
    let t = TagRef {
        id: 0,
        base: tag_base,
        len: 4096,
    };
    match t.smalloc(8) {
        Some(p) => {
            // SAFETY: 8 bytes just allocated in the tag this sthread holds read-write.
            unsafe { (p.as_ptr() as *mut u64).write_volatile(4242) };
            (p.as_ptr() as u64 - tag_base) as i32
        }
        None => -1,
    }
}

#[test]
fn an_sthread_on_its_own_thread_allocates_from_its_tag() {
    if !common::dune_available("an_sthread_on_its_own_thread_allocates_from_its_tag") {
        return;
    }
    let (_key, key_addr) = secret();
    let t = tag_new(100).unwrap();
    let first = smalloc(&t, 8).unwrap().as_ptr() as u64;
    let mut p = SPolicy::new();
    p.grant_tag(&t, Rights::ReadWrite);
    let threads: Vec<_> = (0..3)
        .map(|_| sthread_create(&p, alloc_inside, t.handle().base).unwrap())
        .collect();
    let mut offs: Vec<i32> = threads
        .into_iter()
        .map(|s| s.join().unwrap().check().unwrap())
        .collect();
    offs.sort();
    let base = t.handle().base;
    assert_eq!(
        offs,
        [first - base + 16, first - base + 32, first - base + 48].map(|o| o as i32)
    );
    for o in offs {
        // SAFETY: allocations in the live tag, the sthreads ended.
        let v = unsafe { ((base + o as u64) as *const u64).read_volatile() };
        assert_eq!(v, 4242);
    }
    // read-only: the allocation's header store faults
    let mut ro = SPolicy::new();
    ro.grant_tag(&t, Rights::Read);
    let r = sthread_run(&ro, alloc_inside, base).unwrap();
    expect_fault(&r, FaultKind::Write, base, Some(t.id()));
    intact(key_addr);
}

fn store(a: u64) -> i32 {
    // SAFETY: deliberately a store into a tag granted read-only: must fault.
    unsafe { (a as *mut u64).write_volatile(1) };
    0
}

#[test]
fn a_new_sthread_never_inherits_a_dropped_sthreads_rights() {
    if !common::dune_available("a_new_sthread_never_inherits_a_dropped_sthreads_rights") {
        return;
    }
    // regression: dune-hw reused a dropped view's page-table addresses, and KVM's shadow
    // pages of them (the old rights) came back with the new view
    let t = tag_new(100).unwrap();
    let a = smalloc(&t, 8).unwrap().as_ptr() as u64;
    let mut ro = SPolicy::new();
    ro.grant_tag(&t, Rights::Read);
    let mut rw = SPolicy::new();
    rw.grant_tag(&t, Rights::ReadWrite);
    for _ in 0..4 {
        assert_eq!(sthread_run(&rw, store, a).unwrap().ended, Ended::Exited(0));
        // SAFETY: the allocation in the live tag; the sthread ended.
        unsafe { (a as *mut u64).write_volatile(SECRET) };
        let r = sthread_run(&ro, store, a).unwrap();
        expect_fault(&r, FaultKind::Write, a, Some(t.id()));
        intact(a);
    }
}
