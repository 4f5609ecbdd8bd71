//! Host-side counters of the Dune ledger (issue 15): what the host kernel's KVM does on a
//! vCPU thread's behalf inside `KVM_RUN`, which the guest runtime cannot see.
//!
//! Each vCPU thread opens, once, a group of per-thread perf events (`perf_event_open`,
//! pid 0 = the calling thread, any CPU, counting only) on the KVM shadow-MMU tracepoints
//! in [`HOST_EVENTS`]. They fire in the context of the thread that runs the vCPU (KVM
//! handles the guest's page faults, resyncs and exits inside that thread's `KVM_RUN`), so
//! the group counts exactly that vCPU's shadow-MMU events. The monitor reads the group
//! (one `read`) after every `KVM_RUN` and adds the deltas to process-wide counters that
//! [`crate::ledger`] reports. The thread's user and system time inside `KVM_RUN`
//! (`getrusage(RUSAGE_THREAD)` around it) are added too.
//!
//! The tracepoints need tracefs (`/sys/kernel/tracing` or `/sys/kernel/debug/tracing`)
//! and the right to open kernel tracepoint events (root or `CAP_PERFMON`). Where they
//! cannot be opened nothing is counted, the ledger's `host_threads_failed` says on how
//! many threads, and [`status`] says why: callers then fall back to estimates.
//!
//! Bottom layer (arch): imports nothing of the crate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The tracepoints counted per vCPU thread (`subsystem`, `name`), in ledger order.
pub const HOST_EVENTS: [(&str, &str); N_HOST_EVENTS] = [
    // one guest page-table walk by the shadow MMU: each shadow page fault (and each
    // guest-virtual translation KVM makes for emulation) walks the guest table once
    ("kvmmmu", "kvm_mmu_pagetable_walk"),
    // a fault that reached the point of installing a shadow entry
    ("kvmmmu", "kvm_mmu_spte_requested"),
    // shadow entries written (faults, prefetched neighbours, resyncs)
    ("kvmmmu", "kvm_mmu_set_spte"),
    // KVM set a guest D bit: a write after a D clear (or to a leaf without D)
    ("kvmmmu", "kvm_mmu_set_dirty_bit"),
    // KVM set a guest A bit
    ("kvmmmu", "kvm_mmu_set_accessed_bit"),
    // a shadowed guest page table resynced (at a flush / CR3 load, after the guest wrote
    // the table while it was unsync)
    ("kvmmmu", "kvm_mmu_sync_page"),
    // a shadowed guest page table made unsync (the guest wrote to it: one fault)
    ("kvmmmu", "kvm_mmu_unsync_page"),
    // a shadow page table looked up or created
    ("kvmmmu", "kvm_mmu_get_page"),
    // a shadow page table zapped
    ("kvmmmu", "kvm_mmu_prepare_zap_page"),
    // a guest walk that failed (the fault is the guest's own: reflected to it)
    ("kvmmmu", "kvm_mmu_walker_error"),
    // exits to user space (cross-check of the ledger's exit count)
    ("kvm", "kvm_userspace_exit"),
];

/// Number of [`HOST_EVENTS`].
pub const N_HOST_EVENTS: usize = 11;

/// Index of `kvm_mmu_pagetable_walk` in [`HOST_EVENTS`].
pub const EV_WALK: usize = 0;
/// Index of `kvm_mmu_spte_requested`.
pub const EV_SPTE_REQUESTED: usize = 1;
/// Index of `kvm_mmu_set_spte`.
pub const EV_SET_SPTE: usize = 2;
/// Index of `kvm_mmu_set_dirty_bit`.
pub const EV_SET_DIRTY: usize = 3;
/// Index of `kvm_mmu_sync_page`.
pub const EV_SYNC_PAGE: usize = 5;
/// Index of `kvm_mmu_unsync_page`.
pub const EV_UNSYNC_PAGE: usize = 6;
/// Index of `kvm_userspace_exit`.
pub const EV_USERSPACE_EXIT: usize = 10;

/// Short key of event `i` (its tracepoint name without the `kvm_`/`kvm_mmu_` prefix).
pub fn event_key(i: usize) -> &'static str {
    let n = HOST_EVENTS[i].1;
    n.strip_prefix("kvm_mmu_")
        .or_else(|| n.strip_prefix("kvm_"))
        .unwrap_or(n)
}

/// `perf_event_attr`, first published layout (`PERF_ATTR_SIZE_VER0`, 64 bytes), which
/// every kernel accepts.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

const PERF_TYPE_TRACEPOINT: u32 = 2;
const PERF_FORMAT_GROUP: u64 = 1 << 3;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;

/// Why the counters are not available (None: available, or not tried yet).
static FAILURE: OnceLock<String> = OnceLock::new();

/// Tracepoint ids from tracefs, or why they cannot be read. An event whose id is missing
/// (not compiled into this kernel) is `None`.
fn ids() -> &'static Result<[Option<u64>; N_HOST_EVENTS], String> {
    static IDS: OnceLock<Result<[Option<u64>; N_HOST_EVENTS], String>> = OnceLock::new();
    IDS.get_or_init(|| {
        let root = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
            .into_iter()
            .find(|r| std::path::Path::new(&format!("{r}/events")).is_dir())
            .ok_or_else(|| {
                "tracefs is not mounted (no /sys/kernel/tracing/events or \
                 /sys/kernel/debug/tracing/events; `mount -t tracefs nodev /sys/kernel/tracing` as root)"
                    .to_owned()
            })?;
        let mut out = [None; N_HOST_EVENTS];
        for (i, (sys, name)) in HOST_EVENTS.iter().enumerate() {
            let p = format!("{root}/events/{sys}/{name}/id");
            if let Ok(s) = std::fs::read_to_string(&p) {
                out[i] = s.trim().parse().ok();
            }
        }
        if out.iter().all(|x| x.is_none()) {
            return Err(format!(
                "no kvm/kvmmmu tracepoints under {root}/events (KVM tracing not built in, or not readable)"
            ));
        }
        Ok(out)
    })
}

/// Whether the host counters work in this process: `Ok(events available)` or why not.
/// Before any vCPU thread tried to open them this only checks tracefs.
pub fn status() -> Result<Vec<&'static str>, String> {
    if let Some(why) = FAILURE.get() {
        return Err(why.clone());
    }
    match ids() {
        Ok(ids) => Ok((0..N_HOST_EVENTS)
            .filter(|&i| ids[i].is_some())
            .map(|i| HOST_EVENTS[i].1)
            .collect()),
        Err(e) => Err(e.clone()),
    }
}

fn open_one(id: u64, group: i32) -> Result<i32, std::io::Error> {
    let attr = PerfEventAttr {
        type_: PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: id,
        read_format: PERF_FORMAT_GROUP,
        // counting only, enabled at once, not inherited, user and kernel
        flags: 0,
        ..PerfEventAttr::default()
    };
    // SAFETY: perf_event_open reads `attr` (a valid, initialised PERF_ATTR_SIZE_VER0
    // structure whose size field says so) and returns a new descriptor or -1; pid 0 and
    // cpu -1 count the calling thread on any CPU; `group` is -1 or a descriptor this
    // thread opened by the same call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            0 as libc::pid_t,
            -1 as libc::c_int,
            group as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(fd as i32)
    }
}

/// One vCPU thread's open counter group. Dropping it closes the descriptors.
pub struct ThreadCounters {
    tid: i32,
    fds: Vec<i32>,
    /// Which [`HOST_EVENTS`] index each group member counts (group read order).
    which: Vec<usize>,
    last: [u64; N_HOST_EVENTS],
}

impl ThreadCounters {
    /// Opens the group for the calling thread, or records why it cannot (then None).
    pub fn open() -> Option<ThreadCounters> {
        let ids = match ids() {
            Ok(ids) => ids,
            Err(e) => {
                let _ = FAILURE.set(e.clone());
                add(&C.threads_failed, 1);
                return None;
            }
        };
        let mut t = ThreadCounters {
            // SAFETY: gettid has no arguments.
            tid: unsafe { libc::syscall(libc::SYS_gettid) } as i32,
            fds: Vec::new(),
            which: Vec::new(),
            last: [0; N_HOST_EVENTS],
        };
        for (i, id) in ids.iter().enumerate() {
            let Some(id) = *id else { continue };
            let group = t.fds.first().copied().unwrap_or(-1);
            match open_one(id, group) {
                Ok(fd) => {
                    t.fds.push(fd);
                    t.which.push(i);
                }
                Err(e) => {
                    let _ = FAILURE.set(format!(
                        "perf_event_open({}:{}) failed: {e} (needs root or CAP_PERFMON; \
                         /proc/sys/kernel/perf_event_paranoid)",
                        HOST_EVENTS[i].0, HOST_EVENTS[i].1
                    ));
                    add(&C.threads_failed, 1);
                    return None; // drop closes what was opened
                }
            }
        }
        add(&C.threads, 1);
        Some(t)
    }

    /// The thread the group counts.
    pub fn tid(&self) -> i32 {
        self.tid
    }

    /// Reads the group and adds the events since the last read to the process counters.
    pub fn update(&mut self) {
        let mut buf = [0u64; N_HOST_EVENTS + 1];
        let want = (1 + self.fds.len()) * 8;
        // SAFETY: reads at most size_of_val(buf) bytes into `buf`, a live local array;
        // the descriptor is this group's leader, open while `self` lives.
        let n = unsafe {
            libc::read(
                self.fds[0],
                buf.as_mut_ptr().cast(),
                std::mem::size_of_val(&buf),
            )
        };
        if n as usize != want || buf[0] as usize != self.fds.len() {
            return;
        }
        for (k, &i) in self.which.iter().enumerate() {
            let v = buf[1 + k];
            add(&C.events[i], v.saturating_sub(self.last[i]));
            self.last[i] = v;
        }
    }
}

impl Drop for ThreadCounters {
    fn drop(&mut self) {
        for &fd in self.fds.iter().rev() {
            // SAFETY: a descriptor this group opened and nothing else closes.
            unsafe { libc::close(fd) };
        }
    }
}

struct Counters {
    events: [AtomicU64; N_HOST_EVENTS],
    threads: AtomicU64,
    threads_failed: AtomicU64,
    run_utime_ns: AtomicU64,
    run_stime_ns: AtomicU64,
}

static C: Counters = Counters {
    events: [const { AtomicU64::new(0) }; N_HOST_EVENTS],
    threads: AtomicU64::new(0),
    threads_failed: AtomicU64::new(0),
    run_utime_ns: AtomicU64::new(0),
    run_stime_ns: AtomicU64::new(0),
};

fn add(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// The calling thread's host page faults (minor + major), user and system time (ns),
/// from `getrusage(RUSAGE_THREAD)`; None if the call fails.
pub fn thread_usage() -> Option<(u64, u64, u64)> {
    // SAFETY: a zeroed rusage is valid; getrusage writes it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD with a valid out pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) } != 0 {
        return None;
    }
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    Some((
        (ru.ru_minflt + ru.ru_majflt) as u64,
        ns(ru.ru_utime),
        ns(ru.ru_stime),
    ))
}

/// `utime_ns` user and `stime_ns` system time of a vCPU thread passed inside one
/// `KVM_RUN`.
pub fn time_in_run(utime_ns: u64, stime_ns: u64) {
    add(&C.run_utime_ns, utime_ns);
    add(&C.run_stime_ns, stime_ns);
}

/// A snapshot: (events, threads counted, threads whose open failed, user ns in
/// `KVM_RUN`, system ns in `KVM_RUN`).
pub fn snapshot() -> ([u64; N_HOST_EVENTS], u64, u64, u64, u64) {
    let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
    (
        std::array::from_fn(|i| l(&C.events[i])),
        l(&C.threads),
        l(&C.threads_failed),
        l(&C.run_utime_ns),
        l(&C.run_stime_ns),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_and_distinct_and_indices_name_their_events() {
        let keys: Vec<_> = (0..N_HOST_EVENTS).map(event_key).collect();
        let mut d = keys.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), N_HOST_EVENTS);
        assert_eq!(keys[EV_WALK], "pagetable_walk");
        assert_eq!(keys[EV_SPTE_REQUESTED], "spte_requested");
        assert_eq!(keys[EV_SET_SPTE], "set_spte");
        assert_eq!(keys[EV_SET_DIRTY], "set_dirty_bit");
        assert_eq!(keys[EV_SYNC_PAGE], "sync_page");
        assert_eq!(keys[EV_UNSYNC_PAGE], "unsync_page");
        assert_eq!(keys[EV_USERSPACE_EXIT], "userspace_exit");
        assert_eq!(std::mem::size_of::<PerfEventAttr>(), 64);
    }
}
