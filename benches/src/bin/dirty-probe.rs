//! `dirty-probe <backend>`: per-page costs of one dirty tracker, 256 and 65,536 pages, one
//! line each. For `dune` the process first enters Dune mode (the backend reads the guest
//! page table's dirty bits).

use dunegc_benches::dirty_probe::{measure, to_line};
use gc_core::Backend;

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    let backend: Backend = match arg.parse() {
        Ok(b) => b,
        Err(e) => {
            println!("dirty-probe-error {e}");
            std::process::exit(2);
        }
    };
    if backend == Backend::Dune {
        if let Err(e) = gc_core::dirty::dune::enter_process() {
            println!("dirty-probe-error {e}");
            std::process::exit(2);
        }
    }
    for n in [256usize, 65_536] {
        match measure(backend, n, if n > 1000 { 5 } else { 21 }) {
            Ok(p) => println!("{}", to_line(backend, &p)),
            Err(e) => {
                println!("dirty-probe-error {e}");
                std::process::exit(2);
            }
        }
    }
    if backend == Backend::Dune {
        let _ = dune_hw::exit();
    }
}
