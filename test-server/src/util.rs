//! Small helpers every module uses: error context, running a command,
//! unique ids, and the one poison-tolerant lock.

use std::io;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Adds context to an IO error, keeping its kind.
pub(crate) fn annotate(e: io::Error, context: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{context}: {e}"))
}

/// Runs `cmd` to completion; on failure returns an error with its output.
pub(crate) fn run_checked(cmd: &mut Command) -> io::Result<std::process::Output> {
    let what = format!("{:?}", cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| annotate(e, &format!("cannot run {what}")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(out)
}

/// A process-unique number for temporary file names and request ids.
pub(crate) fn unique_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Locks `m` even if a thread panicked while holding it: every lock of
/// this crate guards plain data (a set of ports, a pipe, nothing at all)
/// that a panicking holder cannot leave half-changed in a way that
/// matters, and a test server must still be stoppable after a test
/// panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
