//! The sandbox's own answers to its memory calls (public API layer): `arch_prctl`, `brk`,
//! `mmap`, `munmap`, `mprotect` inside the sandbox's arena and page-table view.

use super::*;

pub(super) fn arch_prctl(
    sb: &mut Sandbox,
    vcpu: &mut Vcpu,
    call: &Syscall,
) -> Result<i64, SandboxError> {
    const ARCH_SET_FS: u64 = 0x1002;
    const ARCH_GET_FS: u64 = 0x1003;
    let [code, addr, ..] = call.args;
    Ok(match code {
        ARCH_SET_FS => {
            let mut s = vcpu.sregs()?;
            s.fs.base = addr;
            vcpu.set_sregs(&s)?;
            sb.fs_base = addr;
            0
        }
        ARCH_GET_FS => {
            if !sb.view.user_can(addr, 8, true) {
                -EFAULT
            } else {
                // SAFETY: 8 bytes the view maps user-writable: sandbox memory.
                unsafe { crate::arch::addr::write_guest(Gva(addr), sb.fs_base) };
                0
            }
        }
        _ => -EINVAL,
    })
}

pub(super) fn brk(sb: &mut Sandbox, vcpu: &mut Vcpu, call: &Syscall) -> Result<i64, SandboxError> {
    let want = call.args[0];
    let a = sb.arena;
    if want < a.brk_start {
        return Ok(a.brk as i64);
    }
    let (Some(new_end), Some(old_end)) = (page_up(want), page_up(a.brk)) else {
        return Ok(a.brk as i64);
    };
    if new_end.saturating_add(GUARD_BYTES) > a.mmap_low {
        let reason = format!(
            "memory limit: brk to {want:#x} needs {} bytes, the arena has {} left",
            new_end - old_end,
            a.mmap_low.saturating_sub(old_end + GUARD_BYTES)
        );
        record(sb, call, ENOMEM as i32, reason);
        return Ok(a.brk as i64);
    }
    if new_end > old_end {
        sb.view
            .map_user(old_end, new_end, libc::PROT_READ | libc::PROT_WRITE)?;
    } else if new_end < old_end {
        sb.view.unmap(new_end, old_end);
        flush_tlb(vcpu)?;
        zero_host(new_end, old_end);
    }
    sb.arena.brk = want;
    Ok(want as i64)
}

pub(super) fn mmap(sb: &mut Sandbox, vcpu: &mut Vcpu, call: &Syscall) -> Result<i64, SandboxError> {
    let [addr, len, prot, flags, _fd, _off] = call.args;
    let prot_all = (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64;
    if len == 0 || prot & !prot_all != 0 {
        return Ok(-EINVAL);
    }
    let Some(len) = page_up(len) else {
        return Ok(-ENOMEM);
    };
    if flags & libc::MAP_ANONYMOUS as u64 == 0 {
        return Ok(refuse(
            sb,
            call,
            ENODEV,
            "file mappings are not supported in a sandbox (read the file instead)".into(),
        ));
    }
    let a = sb.arena;
    let top = a.stack_low - GUARD_BYTES;
    let fixed = flags & (libc::MAP_FIXED | libc::MAP_FIXED_NOREPLACE) as u64 != 0;
    let start = if fixed {
        let end = addr.checked_add(len);
        if !addr.is_multiple_of(BYTES_IN_PAGE) || addr < a.mmap_low || end.is_none_or(|e| e > top) {
            return Ok(refuse(
                sb,
                call,
                ENOMEM,
                format!("fixed mapping at {addr:#x} outside the sandbox's mmap area"),
            ));
        }
        sb.view.unmap(addr, addr + len);
        flush_tlb(vcpu)?;
        zero_host(addr, addr + len);
        addr
    } else {
        match a.mmap_low.checked_sub(len) {
            Some(low)
                if low >= a.brk_start.max(page_up(a.brk).unwrap_or(u64::MAX)) + GUARD_BYTES =>
            {
                sb.arena.mmap_low = low;
                low
            }
            _ => {
                let free = a
                    .mmap_low
                    .saturating_sub(page_up(a.brk).unwrap_or(u64::MAX) + GUARD_BYTES);
                return Ok(refuse(
                    sb,
                    call,
                    ENOMEM,
                    format!("memory limit: mmap of {len} bytes, the arena has {free} left"),
                ));
            }
        }
    };
    sb.view.map_user(start, start + len, prot as i32)?;
    Ok(start as i64)
}

pub(super) fn munmap(
    sb: &mut Sandbox,
    vcpu: &mut Vcpu,
    call: &Syscall,
) -> Result<i64, SandboxError> {
    let [addr, len, ..] = call.args;
    let a = sb.arena;
    let top = a.stack_low - GUARD_BYTES;
    let Some(len) = page_up(len) else {
        return Ok(-EINVAL);
    };
    let end = addr.checked_add(len);
    if len == 0
        || !addr.is_multiple_of(BYTES_IN_PAGE)
        || addr < a.mmap_low
        || end.is_none_or(|e| e > top)
    {
        return Ok(-EINVAL);
    }
    sb.view.unmap(addr, addr + len);
    flush_tlb(vcpu)?;
    zero_host(addr, addr + len);
    if addr == a.mmap_low {
        sb.arena.mmap_low = addr + len;
    }
    Ok(0)
}

pub(super) fn mprotect(
    sb: &mut Sandbox,
    vcpu: &mut Vcpu,
    call: &Syscall,
) -> Result<i64, SandboxError> {
    let [addr, len, prot, ..] = call.args;
    let prot_all = (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64;
    let (Some(len), true) = (page_up(len), prot & !prot_all == 0) else {
        return Ok(-EINVAL);
    };
    let Some(end) = addr.checked_add(len) else {
        return Ok(-ENOMEM);
    };
    if !addr.is_multiple_of(BYTES_IN_PAGE) {
        return Ok(-EINVAL);
    }
    let a = sb.arena;
    let inside = |s: u64, e: u64| addr >= s && end <= e;
    let owned = inside(a.start, page_up(a.brk).unwrap_or(a.brk))
        || inside(a.mmap_low, a.stack_low - GUARD_BYTES)
        || inside(a.stack_low, a.end);
    if !owned {
        return Ok(-ENOMEM);
    }
    sb.view.map_user(addr, end, prot as i32)?;
    flush_tlb(vcpu)?;
    Ok(0)
}
