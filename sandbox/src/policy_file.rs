//! Policy files: which syscalls a program may make and which paths it may open.
//!
//! ```text
//! # comment
//! allow read write brk mmap exit_group   # syscalls by name (any number per line)
//! deny  socket EACCES                    # this call fails with this errno (name or number)
//! emulate getuid 0                       # this call returns this value, nothing runs
//! read  /usr/share/zoneinfo              # paths it may open for reading (prefix, by component)
//! write /tmp/out                         # paths it may open for writing (and reading)
//! default kill                           # a call not allowed ends the run (the default)
//! default errno EPERM                    # ... or fails with this errno (name or number)
//! ```
//! `exit` and `exit_group` are always allowed (they end the run).
//! `open`, `openat` and `creat` are checked against the path lists (relative paths are
//! taken from the current directory; a path with a `..` component is refused; symlinks
//! are not followed by the sandbox core when it opens the file).

use dune_hw::sandbox::{names, Memory, Policy, Syscall, Verdict};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// What happens to a call the policy does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    /// End the run ([`dune_hw::sandbox::Outcome::Denied`]).
    Kill,
    /// Fail the call with this errno.
    Errno(i32),
}

/// A parsed policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilePolicy {
    allowed: BTreeSet<u64>,
    /// Calls answered without running them: `Err(errno)` (deny) or `Ok(value)` (emulate).
    answered: BTreeMap<u64, Result<i64, i32>>,
    readable: Vec<PathBuf>,
    writable: Vec<PathBuf>,
    default: DefaultAction,
}

/// A policy file that cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based line (0: the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "policy: {}", self.message)
        } else {
            write!(f, "policy line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for PolicyError {}

const ERRNO_NAMES: &[(&str, i32)] = &[
    ("EPERM", libc::EPERM),
    ("ENOENT", libc::ENOENT),
    ("EACCES", libc::EACCES),
    ("EFAULT", libc::EFAULT),
    ("EINVAL", libc::EINVAL),
    ("ENOMEM", libc::ENOMEM),
    ("ENOSYS", libc::ENOSYS),
];

fn parse_errno(s: &str) -> Option<i32> {
    ERRNO_NAMES
        .iter()
        .find(|(n, _)| *n == s)
        .map(|&(_, e)| e)
        .or_else(|| s.parse::<i32>().ok().filter(|&e| (1..4096).contains(&e)))
}

impl FilePolicy {
    /// Parses the text of a policy file.
    pub fn parse(text: &str) -> Result<FilePolicy, PolicyError> {
        let mut p = FilePolicy {
            allowed: BTreeSet::new(),
            answered: BTreeMap::new(),
            readable: Vec::new(),
            writable: Vec::new(),
            default: DefaultAction::Kill,
        };
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |message: String| PolicyError { line, message };
            let body = raw.split('#').next().unwrap_or("").trim();
            let mut words = body.split_whitespace();
            let Some(directive) = words.next() else {
                continue;
            };
            let rest: Vec<&str> = words.collect();
            match directive {
                "allow" => {
                    if rest.is_empty() {
                        return Err(err("`allow` needs at least one syscall name".into()));
                    }
                    for name in rest {
                        let nr = names::number(name).ok_or_else(|| {
                            err(format!("unknown syscall `{name}` (x86-64 Linux names)"))
                        })?;
                        p.allowed.insert(nr);
                    }
                }
                "deny" | "emulate" => {
                    let [name, value] = rest[..] else {
                        return Err(err(format!(
                            "`{directive}` takes a syscall name and {}",
                            if directive == "deny" {
                                "an errno"
                            } else {
                                "a value"
                            }
                        )));
                    };
                    let nr = names::number(name).ok_or_else(|| {
                        err(format!("unknown syscall `{name}` (x86-64 Linux names)"))
                    })?;
                    let answer = if directive == "deny" {
                        Err(parse_errno(value)
                            .ok_or_else(|| err(format!("unknown errno `{value}`")))?)
                    } else {
                        Ok(value
                            .parse::<i64>()
                            .map_err(|_| err(format!("`{value}` is not an integer")))?)
                    };
                    p.answered.insert(nr, answer);
                }
                "read" | "write" => {
                    let [path] = rest[..] else {
                        return Err(err(format!("`{directive}` takes exactly one path")));
                    };
                    let path = Path::new(path);
                    if !path.is_absolute() {
                        return Err(err(format!("path `{}` must be absolute", path.display())));
                    }
                    let path = normalize(path)
                        .ok_or_else(|| err(format!("path `{}` contains `..`", path.display())))?;
                    if directive == "read" {
                        p.readable.push(path);
                    } else {
                        p.writable.push(path);
                    }
                }
                "default" => {
                    p.default = match rest[..] {
                        ["kill"] => DefaultAction::Kill,
                        ["errno", e] => DefaultAction::Errno(
                            parse_errno(e).ok_or_else(|| err(format!("unknown errno `{e}`")))?,
                        ),
                        _ => {
                            return Err(err(
                                "`default` is `default kill` or `default errno <NAME|N>`".into(),
                            ))
                        }
                    }
                }
                other => {
                    return Err(err(format!(
                        "unknown directive `{other}` (allow, deny, emulate, read, write, default)"
                    )))
                }
            }
        }
        Ok(p)
    }

    /// Reads and parses a policy file.
    pub fn load(path: &Path) -> Result<FilePolicy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            line: 0,
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        FilePolicy::parse(&text)
    }

    /// Whether syscall `nr` is allowed by name.
    pub fn allows(&self, nr: u64) -> bool {
        self.allowed.contains(&nr)
    }

    /// What happens to calls not allowed.
    pub fn default_action(&self) -> DefaultAction {
        self.default
    }

    /// Whether `path` (absolute, normalised) may be opened for writing (`write`) or
    /// reading.
    pub fn path_allowed(&self, path: &Path, write: bool) -> bool {
        let w = self.writable.iter().any(|p| path.starts_with(p));
        w || (!write && self.readable.iter().any(|p| path.starts_with(p)))
    }

    fn refuse(&self, reason: String) -> Verdict {
        match self.default {
            DefaultAction::Kill => Verdict::Kill(reason),
            DefaultAction::Errno(e) => Verdict::Deny(e),
        }
    }

    fn check_open(&self, call: &Syscall, mem: &Memory<'_>) -> Verdict {
        let [a0, a1, a2, ..] = call.args;
        let (dirfd, path, flags) = match call.name() {
            "open" => (libc::AT_FDCWD, a0, a1 as i32),
            "creat" => (libc::AT_FDCWD, a0, libc::O_WRONLY | libc::O_CREAT),
            _ => (a0 as i32, a1, a2 as i32),
        };
        let Some(bytes) = mem.read_cstr(path) else {
            return Verdict::Deny(libc::EFAULT);
        };
        let raw = PathBuf::from(String::from_utf8_lossy(&bytes).into_owned());
        let full = if raw.is_absolute() {
            raw
        } else if dirfd == libc::AT_FDCWD {
            match std::env::current_dir() {
                Ok(d) => d.join(raw),
                Err(_) => return self.refuse("relative path without a current directory".into()),
            }
        } else {
            return self.refuse(format!(
                "{} of relative path `{}` against a directory descriptor",
                call.name(),
                raw.display()
            ));
        };
        let Some(norm) = normalize(&full) else {
            return self.refuse(format!("path `{}` contains `..`", full.display()));
        };
        let write = flags & libc::O_ACCMODE != libc::O_RDONLY
            || flags & (libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) != 0;
        if self.path_allowed(&norm, write) {
            Verdict::Allow
        } else {
            self.refuse(format!(
                "{} of `{}` for {} is outside the policy's {} paths",
                call.name(),
                norm.display(),
                if write { "writing" } else { "reading" },
                if write { "writable" } else { "readable" },
            ))
        }
    }
}

/// `path` without `.` components; `None` if it has a `..` component.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => return None,
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

impl Policy for FilePolicy {
    fn decide(&mut self, call: &Syscall, mem: &Memory<'_>) -> Verdict {
        match self.answered.get(&call.nr) {
            Some(Err(errno)) => return Verdict::Deny(*errno),
            Some(Ok(v)) => return Verdict::Emulate(*v),
            None => {}
        }
        if !self.allows(call.nr) {
            return self.refuse(format!(
                "syscall {} is not allowed by the policy",
                call.name()
            ));
        }
        match call.name() {
            "open" | "openat" | "creat" => self.check_open(call, mem),
            _ => Verdict::Allow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_directives_and_checks_paths() {
        let p = FilePolicy::parse(
            "# a policy\nallow read write\nallow exit_group openat # trailing\n\
             read /usr/share/\nwrite /tmp/out\ndefault errno EACCES\n",
        )
        .unwrap();
        assert!(p.allows(0) && p.allows(1) && p.allows(257));
        assert!(!p.allows(39));
        assert_eq!(p.default_action(), DefaultAction::Errno(libc::EACCES));
        assert!(p.path_allowed(Path::new("/usr/share/x"), false));
        assert!(!p.path_allowed(Path::new("/usr/share/x"), true));
        assert!(p.path_allowed(Path::new("/tmp/out/a"), true));
        assert!(p.path_allowed(Path::new("/tmp/out/a"), false));
        assert!(
            !p.path_allowed(Path::new("/tmp/outside"), true),
            "by component"
        );
        assert_eq!(normalize(Path::new("/a/./b")), Some(PathBuf::from("/a/b")));
        assert_eq!(normalize(Path::new("/a/../b")), None);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let e = |t: &str| FilePolicy::parse(t).unwrap_err().to_string();
        assert_eq!(
            e("allow read\nallow no_such_call"),
            "policy line 2: unknown syscall `no_such_call` (x86-64 Linux names)"
        );
        assert!(e("frobnicate x").contains("unknown directive `frobnicate`"));
        assert!(e("read tmp").contains("must be absolute"));
        assert!(e("write /tmp/../etc").contains("contains `..`"));
        assert!(e("default errno EWHAT").contains("unknown errno"));
        assert!(e("allow").contains("at least one"));
        assert!(e("read /a /b").contains("exactly one path"));
        assert_eq!(
            FilePolicy::parse("").unwrap().default_action(),
            DefaultAction::Kill
        );
        assert!(e("deny socket").contains("a syscall name and an errno"));
        assert!(e("emulate getuid x").contains("`x` is not an integer"));
        assert!(e("deny fly EPERM").contains("unknown syscall `fly`"));
    }

    #[test]
    fn deny_and_emulate_answer_before_allow() {
        let p = FilePolicy::parse("allow getuid socket\ndeny socket EACCES\nemulate getuid 0\n")
            .unwrap();
        assert_eq!(p.answered.get(&41), Some(&Err(libc::EACCES)));
        assert_eq!(p.answered.get(&102), Some(&Ok(0)));
    }
}
