//! A signing server split Wedge-style: `cargo run -p privsep --example server`.
//!
//! Each request is parsed in a recycled sthread that cannot see the key; signing happens
//! in a callgate. One request exploits the parser (makes it read the key's address): it
//! gets nothing and is recorded, and the server goes on. The unseparated server, sent
//! the same request, leaks the key.

#[path = "signer/mod.rs"]
#[allow(dead_code)] // shared with the benchmarks and tests, which use the rest
mod signer;

use signer::{keyed_hash, parse_plain, Answer, Server, MAX_BYTES};

fn main() {
    let key = *b"server secret key, 32 bytes long";
    let mut server = match Server::new(key) {
        Ok(s) => s,
        Err(e) if e.is_dune_unavailable() => {
            println!("SKIPPED server example: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let exploit = format!("EXPLOIT {:016x}", server.key_addr);
    let requests: [&[u8]; 4] = [b"SIGN hello", b"SIGN world", exploit.as_bytes(), b"HELLO"];
    for (i, req) in requests.iter().enumerate() {
        let a = server.handle(req).expect("the server keeps running");
        println!("request {i} {:?}: {a:?}", String::from_utf8_lossy(req));
        if let Answer::Signed(s) = a {
            assert_eq!(
                s,
                keyed_hash(&key, &req[5..]),
                "the callgate signed with the key"
            );
        }
    }
    for (n, e) in &server.incidents {
        println!("incident recorded: request {n}: {e}");
    }
    assert_eq!(
        server.incidents.len(),
        1,
        "the exploit was contained and recorded"
    );
    let mut out = [0u8; MAX_BYTES];
    // SAFETY: the exploit names the key's address, live in the server's tag.
    let n = unsafe { parse_plain(exploit.as_bytes(), &mut out) };
    println!(
        "the same exploit against an unseparated parser leaks {:?} (the key starts {:?})",
        n.map(|n| String::from_utf8_lossy(&out[..n]).into_owned()),
        String::from_utf8_lossy(&key[..8])
    );
}
