//! Debian programs linked against bdwgc's `libgc.so.1`, run unchanged on dunegc by
//! `LD_LIBRARY_PATH` (dunegc installed as `libgc.so.1`, as scripts/build-capi.sh does),
//! with `ldd` checking which library is loaded; their output must equal the output
//! under bdwgc. scripts/setup.sh installs the programs; where one is missing the test
//! prints `SKIPPED`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const TMP_DIR: &str = env!("CARGO_TARGET_TMPDIR");

/// A directory holding dunegc as `libgc.so.1`: a copy of the `libdunegc.so` cargo
/// built into this test's `deps/` directory.
fn libgc_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test knows its own path");
        let deps = exe.parent().expect("tests live in deps/").to_path_buf();
        let so = [deps.join("libdunegc.so"), deps.join("../libdunegc.so")]
            .into_iter()
            .find(|p| p.exists())
            .expect("cargo builds libdunegc.so before the tests");
        let dir = Path::new(TMP_DIR).join("real-programs-libgc");
        std::fs::create_dir_all(&dir).expect("creating the libgc directory");
        let tmp = dir.join(format!("libgc.so.1.tmp{}", std::process::id()));
        std::fs::copy(&so, &tmp).expect("copying libdunegc.so");
        std::fs::rename(&tmp, dir.join("libgc.so.1")).expect("installing libgc.so.1");
        dir
    })
}

/// A generated HTML page of `n` sections (about 190 bytes each, so several megabytes
/// for tens of thousands): paragraphs with links, entities and inline markup, lists,
/// preformatted text, and a small (nested) table every 50 sections.
fn html_page(n: usize) -> String {
    let mut s = String::from("<html><head><title>dunegc w3m test</title></head><body>\n");
    s.push_str("<h1>Generated page &amp; friends</h1>\n");
    for i in 0..n {
        let word = ["alpha", "beta", "gamma", "delta", "epsilon"][i % 5];
        let _ = writeln!(
            s,
            "<h3>Section {i}</h3><p>The <a href=\"/item/{i}\">{word} {}</a> item &lt;{}&gt; \
             has <b>{}</b> and <i>{}</i>.</p><ul><li>{word}</li><li>{}</li></ul>",
            i * 7 % 1000,
            i % 13,
            i.wrapping_mul(2_654_435_761) % 100_000,
            word.repeat(1 + i % 4),
            i % 17
        );
        if i % 50 == 0 {
            let _ = write!(
                s,
                "<table border=1><tr><td>row {i}</td><td><table border=1><tr><td>{word}</td>\
                 <td>&copy; {}</td></tr></table></td></tr><tr><td colspan=2>end</td></tr>\
                 </table><pre>block {i}\n  indented</pre>\n",
                i % 7
            );
        }
    }
    s.push_str("</body></html>\n");
    s
}

/// The path of `program` if it is installed; otherwise print a skip line.
fn installed(program: &str, test: &str) -> Option<PathBuf> {
    let found = ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists());
    if found.is_none() {
        eprintln!("SKIPPED {test}: {program} is not installed (scripts/setup.sh)");
    }
    found
}

/// Require that `exe` loads `libgc.so.1` from `dir` (with `LD_LIBRARY_PATH=dir`), or,
/// with `dir` None, from the system.
fn check_ldd(exe: &Path, dir: Option<&Path>) {
    let mut cmd = Command::new("ldd");
    cmd.arg(exe).env_remove("LD_LIBRARY_PATH");
    if let Some(d) = dir {
        cmd.env("LD_LIBRARY_PATH", d);
    }
    let out = cmd.output().expect("running ldd");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("libgc.so.1"))
        .unwrap_or_else(|| panic!("{} does not link libgc.so.1:\n{text}", exe.display()));
    match dir {
        Some(d) => assert!(
            line.contains(&format!("{}/libgc.so.1", d.display())),
            "dunegc's libgc.so.1 is not the one loaded: {line}"
        ),
        None => assert!(
            !line.contains(TMP_DIR),
            "the system's libgc.so.1 is not the one loaded: {line}"
        ),
    }
}

#[test]
fn w3m_dump_of_a_large_page_is_identical_on_dunegc() {
    let Some(w3m) = installed("w3m", "w3m -dump on dunegc") else {
        return;
    };
    let page = Path::new(TMP_DIR).join("w3m-page.html");
    let html = html_page(14_000);
    assert!(html.len() > 2 << 20, "the page is {} bytes", html.len());
    std::fs::write(&page, html).expect("writing the page");
    let dir = libgc_dir();
    check_ldd(&w3m, None);
    check_ldd(&w3m, Some(dir));
    let run = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(&w3m);
        cmd.args(["-dump", "-cols", "120", "-T", "text/html"])
            .arg(&page)
            .env("HOME", TMP_DIR)
            .env_remove("LD_LIBRARY_PATH");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("GC_")
                || key.to_string_lossy().starts_with("DUNEGC_")
            {
                cmd.env_remove(&key);
            }
        }
        cmd.envs(env.iter().copied());
        let out = cmd.output().expect("running w3m");
        assert!(
            out.status.success(),
            "w3m {env:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let reference = run(&[]);
    assert!(
        reference.len() > 1 << 20,
        "w3m printed {} bytes",
        reference.len()
    );
    let ld = dir.to_str().expect("UTF-8 path");
    // Stop-the-world only: w3m takes seconds on this page (incremental mode is
    // compared by scripts/w3m-bench.sh).
    let ours = run(&[("LD_LIBRARY_PATH", ld)]);
    assert!(ours == reference, "w3m output differs under dunegc");
}
