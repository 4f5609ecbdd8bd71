//! A layer check for the crates of this workspace, with no dependencies.
//!
//! A crate that opts in has a file `LAYERS` next to its `Cargo.toml`: one layer a line,
//! **bottom first**, each line holding one or more module paths separated by spaces
//! (`paging`, `api::options`); `#` starts a comment. A file belongs to the module with the
//! longest declared path that is a prefix of the file's own module path; an import
//! (`use crate::a::{b, c::d}`, `crate::a::f()` in code, `use super::x`) belongs to the
//! module with the longest declared prefix of the imported path. The crate root is the
//! module `crate`: if `LAYERS` does not name it, it is implicitly the top layer. Names the
//! root re-exports (`pub use a::B;` in `lib.rs`) are followed to the module they come from.
//!
//! A module may import from its own layer and from the layers below it. An import from a
//! higher layer is a violation, unless the crate's `LAYERS.baseline` lists its pair of
//! modules as `from -> to` (known violations, allowed while they are being removed). The
//! baseline may only shrink: an entry that no longer occurs is an error too.
//!
//! Comments and `#[cfg(test)]` modules are not read: tests may import anything.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// The declared layers of one crate, bottom first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layers {
    /// `layers[i]` holds the module paths of layer `i` (0 is the bottom).
    pub layers: Vec<Vec<String>>,
}

impl Layers {
    /// Parses the text of a `LAYERS` file.
    pub fn parse(text: &str) -> Result<Layers, String> {
        let mut layers = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut layer = Vec::new();
            for m in line.split_whitespace() {
                if !m
                    .split("::")
                    .all(|s| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_'))
                {
                    return Err(format!("LAYERS:{}: `{m}` is not a module path", i + 1));
                }
                if !seen.insert(m.to_string()) {
                    return Err(format!("LAYERS:{}: module `{m}` declared twice", i + 1));
                }
                layer.push(m.to_string());
            }
            layers.push(layer);
        }
        if layers.is_empty() {
            return Err("LAYERS declares no layer".to_string());
        }
        Ok(Layers { layers })
    }

    /// The layer of a declared module, if declared.
    pub fn layer_of(&self, module: &str) -> Option<usize> {
        self.layers
            .iter()
            .position(|l| l.iter().any(|m| m == module))
    }

    /// The declared module that owns `path` (segments from the crate root): the longest
    /// declared module path that is a prefix of it. The root owns what nothing else does,
    /// when `crate` is declared or `path` is empty.
    pub fn owner(&self, path: &[String]) -> Option<String> {
        let mut best: Option<(usize, &String)> = None;
        for m in self.layers.iter().flatten() {
            let segs: Vec<&str> = m.split("::").collect();
            if m != "crate"
                && segs.len() <= path.len()
                && segs.iter().zip(path).all(|(a, b)| *a == b)
                && best.is_none_or(|(n, _)| segs.len() > n)
            {
                best = Some((segs.len(), m));
            }
        }
        best.map(|(_, m)| m.clone())
    }

    /// The layer of `module`, where an undeclared `crate` is one above the top.
    fn rank(&self, module: &str) -> usize {
        self.layer_of(module).unwrap_or(self.layers.len())
    }
}

/// One import from a module into a higher layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The importing file, relative to the crate directory.
    pub file: PathBuf,
    /// Its 1-based line.
    pub line: usize,
    /// The importing module and its layer (1-based, bottom is 1).
    pub from: (String, usize),
    /// The imported module and its layer (1-based).
    pub to: (String, usize),
    /// The imported path as written, after `crate::`/`super::` resolution.
    pub path: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: upward import: `{}` (layer {}) imports `crate::{}` from `{}` (layer {}); \
             move the item down or invert the dependency",
            self.file.display(),
            self.line,
            self.from.0,
            self.from.1,
            self.path,
            self.to.0,
            self.to.1
        )
    }
}

/// A path imported by a file: its segments from the crate root and its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// Segments from the crate root (`["heap", "kind", "ObjectKind"]`).
    pub path: Vec<String>,
    /// The line of the path's last segment.
    pub line: usize,
}

/// Blanks out comments, string and char literals (keeping newlines, so offsets keep their
/// lines) and `#[cfg(test)]`-gated items with a braced body.
pub fn strip(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        if b[i] == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if b[i] == '/' && b.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.extend([' ', ' ']);
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.extend([' ', ' ']);
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if b[i] == 'r'
            && (b.get(i + 1) == Some(&'"') || b.get(i + 1) == Some(&'#'))
            && (i == 0 || !is_ident(b[i - 1]))
        {
            // Raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(b[i]);
                i += 1;
                continue;
            }
            j += 1;
            while j < b.len() {
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.extend(b[i..j.min(b.len())].iter().map(|&c| blank(c)));
            i = j;
        } else if b[i] == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' && i + 1 < b.len() {
                    out.push(' ');
                    i += 1;
                }
                out.push(blank(b[i]));
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else if b[i] == '\'' && b.get(i + 2) == Some(&'\'') {
            out.extend([' ', ' ', ' ']);
            i += 3;
        } else if b[i] == '\'' && b.get(i + 1) == Some(&'\\') {
            let mut j = i + 3;
            while j < b.len() && b[j] != '\'' {
                j += 1;
            }
            out.extend(b[i..(j + 1).min(b.len())].iter().map(|&c| blank(c)));
            i = j + 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    // Blank the braced item after each `#[cfg(test)]`.
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + marker.len() <= out.len() {
        if out[i..i + marker.len()] == marker[..] {
            let mut j = i + marker.len();
            while j < out.len() && out[j] != '{' && out[j] != ';' {
                j += 1;
            }
            if j < out.len() && out[j] == '{' {
                let mut depth = 0;
                while j < out.len() {
                    match out[j] {
                        '{' => depth += 1,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    j += 1;
                    if depth == 0 {
                        break;
                    }
                }
            }
            let end = j.min(out.len());
            for c in &mut out[i..end] {
                *c = blank(*c);
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The crate-rooted paths a file imports or names: every `crate::` path (a `use` tree with
/// groups, or a path in code) and every `super::` path, resolved against `module`, the
/// file's own module path (`["paging", "walker"]`; empty for the crate root).
pub fn imports(src: &str, module: &[String]) -> Vec<Import> {
    let text: Vec<char> = strip(src).chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let start_ok = i == 0 || !(is_ident(text[i - 1]) || text[i - 1] == '$');
        let prefix = if !start_ok {
            None
        } else if starts_with(&text, i, "crate::") {
            Some((Vec::new(), i + "crate::".len()))
        } else if starts_with(&text, i, "super::") {
            let mut base = module.to_vec();
            let mut j = i;
            let mut ok = true;
            while starts_with(&text, j, "super::") {
                ok &= base.pop().is_some();
                j += "super::".len();
                j = skip_ws(&text, j);
            }
            ok.then_some((base, j))
        } else {
            None
        };
        match prefix {
            Some((base, j)) => {
                let mut paths = Vec::new();
                let end = parse_tree(&text, j, base, &mut paths);
                found.extend(paths.into_iter().map(|(path, at)| Import {
                    path,
                    line: 1 + text[..at].iter().filter(|&&c| c == '\n').count(),
                }));
                i = end.max(i + 1);
            }
            None => i += 1,
        }
    }
    found
}

fn starts_with(text: &[char], i: usize, s: &str) -> bool {
    s.chars()
        .enumerate()
        .all(|(k, c)| text.get(i + k) == Some(&c))
}

fn skip_ws(text: &[char], mut i: usize) -> usize {
    while i < text.len() && text[i].is_whitespace() {
        i += 1;
    }
    i
}

/// Parses a use tree at `i` (after a `::`) with segments `prefix`; pushes every leaf path.
/// Each leaf comes with the offset of its last segment.
fn parse_tree(
    text: &[char],
    i: usize,
    prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    let mut i = skip_ws(text, i);
    match text.get(i) {
        Some('{') => {
            i += 1;
            loop {
                i = skip_ws(text, i);
                match text.get(i) {
                    None => return i,
                    Some('}') => return i + 1,
                    Some(',') => i += 1,
                    Some(_) => {
                        let next = parse_tree(text, i, prefix.clone(), out);
                        if next == i {
                            // Not a tree element (e.g. `as` alias tail): skip one char.
                            i += 1;
                        } else {
                            i = next;
                        }
                    }
                }
            }
        }
        Some('*') => {
            out.push((prefix, i));
            i + 1
        }
        Some(c) if is_ident(*c) => {
            let s = i;
            while i < text.len() && is_ident(text[i]) {
                i += 1;
            }
            let ident: String = text[s..i].iter().collect();
            let mut path = prefix;
            if ident != "self" {
                path.push(ident);
            }
            let j = skip_ws(text, i);
            if starts_with(text, j, "::") {
                parse_tree(text, j + 2, path, out)
            } else {
                // Skip an `as alias`.
                let mut k = j;
                if starts_with(text, k, "as") && text.get(k + 2).is_some_and(|c| c.is_whitespace())
                {
                    k = skip_ws(text, k + 2);
                    while k < text.len() && is_ident(text[k]) {
                        k += 1;
                    }
                    i = k;
                }
                out.push((path, s));
                i
            }
        }
        _ => i,
    }
}

/// The module path of a source file relative to `src/`: `paging/walker.rs` and
/// `paging/walker/mod.rs` are `["paging", "walker"]`; `lib.rs` is `[]`.
pub fn module_of(rel: &Path) -> Vec<String> {
    let mut segs: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = segs.pop() {
        let stem = last.strip_suffix(".rs").unwrap_or(&last).to_string();
        if stem != "mod" && !(segs.is_empty() && (stem == "lib" || stem == "main")) {
            segs.push(stem);
        }
    }
    segs
}

/// Reads a baseline file's `from -> to` entries (missing file: empty).
pub fn parse_baseline(text: &str) -> Result<BTreeSet<(String, String)>, String> {
    let mut set = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let Some((a, b)) = line.split_once("->") else {
            return Err(format!("LAYERS.baseline:{}: expected `from -> to`", i + 1));
        };
        if !set.insert((a.trim().to_string(), b.trim().to_string())) {
            return Err(format!("LAYERS.baseline:{}: duplicate entry", i + 1));
        }
    }
    Ok(set)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// The names the crate root re-exports (`pub use a::b::C;` → `C` ↦ `a::b::C`).
fn root_reexports(root_src: &str) -> BTreeMap<String, Vec<String>> {
    let text = strip(root_src);
    let mut map = BTreeMap::new();
    for stmt in text.split(';') {
        let s = stmt.trim();
        let Some(rest) = s.strip_prefix("pub use ") else {
            continue;
        };
        let rest: Vec<char> = rest.trim_start_matches("self::").chars().collect();
        let mut paths = Vec::new();
        parse_tree(&rest, 0, Vec::new(), &mut paths);
        for (p, _) in paths {
            if let Some(last) = p.last() {
                map.insert(last.clone(), p);
            }
        }
    }
    map
}

/// All violations of a crate (at `dir`, with `src/` and `LAYERS`), baseline not applied.
pub fn violations(dir: &Path, layers: &Layers) -> Result<Vec<Violation>, Vec<String>> {
    let src = dir.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files).map_err(|e| vec![format!("{}: {e}", src.display())])?;
    let root_src = ["lib.rs", "main.rs"]
        .iter()
        .find_map(|f| fs::read_to_string(src.join(f)).ok())
        .unwrap_or_default();
    let reexports = root_reexports(&root_src);
    let mut problems = Vec::new();
    let mut found = Vec::new();
    for file in files {
        let rel = file.strip_prefix(dir).unwrap_or(&file).to_path_buf();
        let module = module_of(file.strip_prefix(&src).unwrap_or(&file));
        let text = match fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{}: {e}", rel.display()));
                continue;
            }
        };
        let from = if module.is_empty() {
            "crate".to_string()
        } else if let Some(m) = layers.owner(&module) {
            m
        } else {
            problems.push(format!(
                "{}: module `{}` is in no layer: declare it in LAYERS",
                rel.display(),
                module.join("::")
            ));
            continue;
        };
        for imp in imports(&text, &module) {
            let mut path = imp.path.clone();
            let to = match layers.owner(&path) {
                Some(m) => m,
                None => match path.first().and_then(|f| reexports.get(f)) {
                    Some(real) if !real.is_empty() && layers.owner(real).is_some() => {
                        let mut p = real.clone();
                        p.extend(path.drain(1..));
                        path = p;
                        layers.owner(&path).expect("checked above")
                    }
                    _ => "crate".to_string(),
                },
            };
            if to == from {
                continue;
            }
            let (lf, lt) = (layers.rank(&from), layers.rank(&to));
            if lt > lf {
                found.push(Violation {
                    file: rel.clone(),
                    line: imp.line,
                    from: (from.clone(), lf + 1),
                    to: (to, lt + 1),
                    path: path.join("::"),
                });
            }
        }
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems)
    }
}

/// Checks the crate at `dir` against its `LAYERS` and `LAYERS.baseline`: every upward
/// import must be in the baseline, and every baseline entry must still occur.
pub fn check_crate(dir: &Path) -> Result<(), Vec<String>> {
    let layers_text = fs::read_to_string(dir.join("LAYERS"))
        .map_err(|e| vec![format!("{}: {e}", dir.join("LAYERS").display())])?;
    let layers = Layers::parse(&layers_text).map_err(|e| vec![e])?;
    let baseline = match fs::read_to_string(dir.join("LAYERS.baseline")) {
        Ok(t) => parse_baseline(&t).map_err(|e| vec![e])?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
        Err(e) => return Err(vec![format!("LAYERS.baseline: {e}")]),
    };
    let mut problems = Vec::new();
    for (a, b) in &baseline {
        for m in [a, b] {
            if m != "crate" && layers.layer_of(m).is_none() {
                problems.push(format!("LAYERS.baseline: `{m}` is not a module of LAYERS"));
            }
        }
    }
    let found = violations(dir, &layers)?;
    let occurring: BTreeSet<(String, String)> = found
        .iter()
        .map(|v| (v.from.0.clone(), v.to.0.clone()))
        .collect();
    for v in &found {
        if !baseline.contains(&(v.from.0.clone(), v.to.0.clone())) {
            problems.push(v.to_string());
        }
    }
    for (a, b) in baseline.difference(&occurring) {
        problems.push(format!(
            "LAYERS.baseline: stale entry `{a} -> {b}`: no such upward import remains; \
             delete the line (the baseline only shrinks)"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
