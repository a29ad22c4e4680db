//! File helpers: writing configs with readable errors, reading the tails
//! of (possibly large) logs.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::util::annotate;

/// Writes `contents` to `path` with a readable error.
pub(crate) fn write_file(path: &Path, contents: &str) -> io::Result<()> {
    fs::write(path, contents).map_err(|e| annotate(e, &format!("cannot write {}", path.display())))
}

/// Creates `path` and its parents with a readable error.
pub(crate) fn create_dir(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path).map_err(|e| annotate(e, &format!("cannot create {}", path.display())))
}

/// A file's text from byte `offset` on (at most its last MiB; empty if
/// missing).
pub(crate) fn read_from(path: &Path, offset: u64) -> String {
    const MAX_BYTES: u64 = 1 << 20;
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = offset.max(len.saturating_sub(MAX_BYTES));
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The last `lines` lines of a (possibly large or missing) text file.
pub(crate) fn tail_lines(path: &Path, lines: usize) -> String {
    let text = read_from(path, 0);
    let all: Vec<&str> = text.lines().collect();
    let mut out = all[all.len().saturating_sub(lines)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}
