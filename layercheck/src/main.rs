//! `layercheck CRATE_DIR...`: checks each crate directory's imports against its `LAYERS`
//! file (and `LAYERS.baseline`, if any). Exits with status 1 and one line per problem
//! when any crate fails.

fn main() {
    let dirs: Vec<String> = std::env::args().skip(1).collect();
    if dirs.is_empty() {
        eprintln!("usage: layercheck CRATE_DIR...");
        std::process::exit(2);
    }
    let mut failed = false;
    for dir in &dirs {
        match layercheck::check_crate(std::path::Path::new(dir)) {
            Ok(()) => println!("{dir}: layers ok"),
            Err(problems) => {
                failed = true;
                for p in problems {
                    eprintln!("{dir}: {p}");
                }
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
