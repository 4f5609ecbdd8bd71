//! The example server: requests are signed through the callgate in every way of serving,
//! and the exploiting request is contained and recorded (SKIPPED without /dev/kvm).

mod common;
#[path = "../examples/signer/mod.rs"]
#[allow(dead_code)]
mod signer;

use signer::{handle_forked, handle_plain, keyed_hash, Answer, Server};

#[test]
fn requests_are_signed_and_the_exploit_gets_nothing() {
    if !common::dune_available("requests_are_signed_and_the_exploit_gets_nothing") {
        return;
    }
    let key = *b"0123456789abcdef0123456789abcdef";
    let mut s = Server::new(key).unwrap();
    let want = Answer::Signed(keyed_hash(&key, b"abc"));
    assert_eq!(s.handle(b"SIGN abc").unwrap(), want);
    assert_eq!(s.handle_fresh(b"SIGN abc").unwrap(), want);
    assert_eq!(handle_plain(&key, b"SIGN abc"), want);
    assert_eq!(handle_forked(&key, b"SIGN abc"), want);
    assert_eq!(s.handle(b"NOPE").unwrap(), Answer::Rejected);
    let exploit = format!("EXPLOIT {:016x}", s.key_addr);
    for _ in 0..3 {
        let a = s.handle(exploit.as_bytes()).unwrap();
        assert!(
            matches!(&a, Answer::Contained(w) if w.contains("Read fault")),
            "{a:?}"
        );
        assert_eq!(s.handle(b"SIGN abc").unwrap(), want, "serving goes on");
    }
    let (f, r) = (
        s.handle_fresh(exploit.as_bytes()).unwrap(),
        s.handle(exploit.as_bytes()).unwrap(),
    );
    assert!(matches!(&f, Answer::Contained(_)), "{f:?}");
    assert_eq!(f, r);
    assert_eq!(s.incidents.len(), 5);
    assert_eq!(
        s.incidents[0].0, 3,
        "numbered from 0: abc, abc, NOPE, then the exploit"
    );
    // SAFETY: the key's address in the server's live tag.
    let now = unsafe { (s.key_addr as *const [u8; 32]).read() };
    assert_eq!(now, key, "key intact");
    assert!(
        s.handle(&[b'x'; 300]).is_err(),
        "oversized request: a clear error"
    );
}
