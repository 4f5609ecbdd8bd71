//! `fresh-pages <native|dune> <plain|populate|huge> [MiB]`: the fresh-page microbenchmark of issue 15
//! (see `dunegc_benches::fresh_pages`), one configuration, one line.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dunegc_benches::fresh_pages::main_with_args(&args) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            println!("fresh-pages-error {e}");
            std::process::exit(2);
        }
    }
}
