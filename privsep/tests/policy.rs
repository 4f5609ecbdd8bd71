//! Policy rules that need no KVM: subset checks, child-request resolution, bad input.

use privsep::policy::SyscallSet;
use privsep::{tag_new, ChildRequest, FdRights, PrivsepError, Rights, SPolicy};

fn noop(_: u64) -> i32 {
    0
}

#[test]
fn subsets_and_escalations() {
    let a = tag_new(10).unwrap();
    let b = tag_new(10).unwrap();
    let mut parent = SPolicy::new();
    parent
        .grant_tag(&a, Rights::ReadWrite)
        .grant_tag(&b, Rights::Read)
        .grant_fd(5, FdRights::READ);
    parent.allow_syscall(libc::SYS_getpid).unwrap();
    let mut ok = SPolicy::new();
    ok.grant_tag(&a, Rights::Read).grant_tag(&b, Rights::Read);
    ok.grant_fd(5, FdRights::READ);
    ok.allow_syscall(libc::SYS_getpid).unwrap();
    assert!(ok.check_subset_of(&parent).is_ok());
    assert!(SPolicy::new().check_subset_of(&parent).is_ok());
    let esc = |f: &dyn Fn(&mut SPolicy)| {
        let mut c = ok.clone();
        f(&mut c);
        matches!(
            c.check_subset_of(&parent),
            Err(PrivsepError::RightsEscalation { .. })
        )
    };
    assert!(esc(&|c| {
        c.grant_tag(&b, Rights::ReadWrite);
    }));
    assert!(esc(&|c| {
        c.grant_tag(&tag_new(1).unwrap(), Rights::Read);
    }));
    assert!(esc(&|c| {
        c.grant_fd(5, FdRights::WRITE);
    }));
    assert!(esc(&|c| {
        c.grant_fd(6, FdRights::READ);
    }));
    assert!(esc(&|c| {
        c.allow_syscall(libc::SYS_write).unwrap();
    }));
    // bad input is an error, not a silent drop
    assert!(matches!(
        parent.allow_syscall(600),
        Err(PrivsepError::BadArgument { .. })
    ));
    assert!(parent.allow_syscall(-1).is_err());
    assert!(tag_new(0).is_err());
    // a child request can only name what the parent holds
    let mut req = ChildRequest::new(noop, 0);
    req.tag(a.handle(), Rights::Read);
    let c = parent.resolve_child(&req).unwrap();
    assert_eq!(c.tag_rights(a.id()), Some(Rights::Read));
    assert_eq!(c.syscalls, SyscallSet::default());
    req.tags[0][1] = 2; // neither Read nor ReadWrite
    assert!(matches!(
        parent.resolve_child(&req),
        Err(PrivsepError::BadArgument { .. })
    ));
    req.tags[0] = [9_999_999, Rights::Read as u64];
    assert!(matches!(
        parent.resolve_child(&req),
        Err(PrivsepError::InvalidTag { id: 9_999_999, .. })
    ));
    req.n_tags = 1000;
    assert!(parent.resolve_child(&req).is_err());
}
