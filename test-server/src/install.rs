//! Installing missing Debian packages with `apt-get`.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Serialises installs between threads of this process (`flock` locks
/// belong to open file descriptions, so two threads opening the lock file
/// would not exclude each other reliably on their own).
static APT_MUTEX: Mutex<()> = Mutex::new(());
/// Serialises installs between processes (parallel test binaries).
const APT_LOCK_FILE: &str = "/tmp/xmpp-test-server-apt.lock";
/// Debian's hook that `invoke-rc.d` / `deb-systemd-invoke` consult before
/// starting a service from a package's postinst.
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// Looks for an executable named `name` in `$PATH` and the usual system
/// directories (`/usr/sbin` is often missing from `$PATH` of non-login
/// shells, and that is where `ejabberdctl` lives).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Makes sure `package` is installed, judged by `present`. If it is not,
/// runs `apt-get update` and `apt-get install` under a process-wide mutex
/// plus an `flock` on [`APT_LOCK_FILE`], re-checking `present` once the
/// locks are held so that concurrent callers install only once.
///
/// `service` names the system service the package ships, if any: it is
/// kept from starting (it would occupy the standard ports) and stopped if
/// it started anyway.
pub fn ensure_package(
    package: &str,
    service: Option<&str>,
    present: impl Fn() -> bool,
) -> io::Result<()> {
    if present() {
        return Ok(());
    }
    let _guard = crate::util::lock(&APT_MUTEX);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(APT_LOCK_FILE)
        .map_err(|e| crate::util::annotate(e, &format!("cannot open {APT_LOCK_FILE}")))?;
    flock_exclusive(&lock)?;
    if present() {
        return Ok(());
    }

    let policy = PolicyGuard::install();
    let apt = |args: &[&str]| {
        let mut cmd = Command::new("apt-get");
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("NEEDRESTART_MODE", "l");
        cmd
    };
    // A failed update (e.g. offline with a warm cache) is not fatal by
    // itself; report it only if the install fails too.
    let update = crate::util::run_checked(&mut apt(&["update"]));
    let install = crate::util::run_checked(&mut apt(&[
        "install",
        "-y",
        "--no-install-recommends",
        package,
    ]));
    drop(policy);
    if let Err(e) = install {
        let update_note = match update {
            Err(u) => format!("\n(apt-get update failed as well: {u})"),
            Ok(_) => String::new(),
        };
        return Err(io::Error::new(
            e.kind(),
            format!(
                "installing the Debian package {package} failed (needs root): {e}{update_note}"
            ),
        ));
    }
    if !present() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("apt-get installed {package}, but its programs are still missing"),
        ));
    }
    if let Some(service) = service {
        stop_system_service(service);
    }
    Ok(())
}

/// Takes an exclusive `flock` on `file` (released when it is closed).
fn flock_exclusive(file: &std::fs::File) -> io::Result<()> {
    loop {
        // SAFETY: plain syscall on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(crate::util::annotate(
                e,
                &format!("cannot lock {APT_LOCK_FILE}"),
            ));
        }
    }
}

/// A temporary `policy-rc.d` that forbids starting services (exit code
/// 101), the standard Debian way to install a daemon without running it.
/// An existing `policy-rc.d` is left alone.
struct PolicyGuard {
    ours: bool,
}

impl PolicyGuard {
    fn install() -> PolicyGuard {
        let created = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(POLICY_RC_D)
            .and_then(|mut f| {
                use std::io::Write;
                f.write_all(b"#!/bin/sh\n# Temporary, by xmpp-test-server: do not start services.\nexit 101\n")
            });
        PolicyGuard {
            ours: created.is_ok(),
        }
    }
}

impl Drop for PolicyGuard {
    fn drop(&mut self) {
        if self.ours {
            let _ = std::fs::remove_file(POLICY_RC_D);
        }
    }
}

/// Stops the system-wide instance of a freshly installed server if it
/// started despite [`PolicyGuard`] (an existing `policy-rc.d` may allow
/// it), judged by something listening on the standard c2s port.
fn stop_system_service(service: &str) {
    const STANDARD_C2S_PORT: u16 = 5222;
    if crate::net::anyone_listens(STANDARD_C2S_PORT) {
        let _ = Command::new("service")
            .args([service, "stop"])
            .stdin(std::process::Stdio::null())
            .output();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    #[ignore = "runs apt-get update and install: needs root and the network"]
    fn runs_apt_for_a_missing_package() {
        // Claim an installed package is missing for the first check and
        // the re-check under the locks, so that apt-get really runs (as a
        // no-op install).
        let checks = AtomicUsize::new(0);
        ensure_package("openssl", None, || {
            checks.fetch_add(1, Ordering::SeqCst) >= 2
        })
        .unwrap();
        assert_eq!(checks.load(Ordering::SeqCst), 3);
        assert!(find_program("openssl").is_some());
    }

    #[test]
    fn finds_programs() {
        assert!(find_program("sh").is_some());
        assert!(find_program("surely-no-such-program-xts").is_none());
    }
}
