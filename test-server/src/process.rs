//! Process supervision: one server process per run, spawned in its own
//! process group with a stdin pipe as the owner's lifeline, polled until
//! it is ready, and stopped by request, `SIGTERM`, then `SIGKILL`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::files::read_from;
use crate::net;
use crate::server::Layout;
use crate::util::{annotate, lock};

/// How long [`Process::wait_ready`] waits for the server to become ready.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping server gets between `SIGTERM` and `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// Interval between readiness / exit polls.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Interval between polls for a stopping server's exit.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// Our end of the server's stdin plus, for ejabberd, its reply channel.
pub(crate) struct Control {
    pub(crate) stdin: ChildStdin,
    pub(crate) replies: Option<Receiver<String>>,
}

/// Turns the server's stdout into a reply channel (ejabberd's command
/// loop), copying everything else to the console log.
pub(crate) type StdoutReader = fn(ChildStdout, File) -> io::Result<Receiver<String>>;

/// Why a started process did not become ready.
pub(crate) enum NotReady {
    /// Supervision itself failed (returned as is).
    Io(io::Error),
    /// The server failed: the error kind (`AddrInUse` makes the caller
    /// retry on another port) and what happened, for an error message
    /// with the log tail.
    Failed(io::ErrorKind, String),
}

/// The server process of the current run, if any.
pub(crate) struct Process {
    child: Option<Child>,
    /// Our end of the server's stdin. Closing it makes the server shut
    /// down (our watchdog for owners that die without running `Drop`). For
    /// ejabberd it is also the command channel (see `ejabberd.rs`).
    control: Mutex<Option<Control>>,
    pid: u32,
    /// Sizes of the server log and the console log when the current run
    /// started: start-up checks look only at what this run wrote.
    log_offsets: (u64, u64),
}

impl Process {
    /// No process yet.
    pub(crate) fn new() -> Process {
        Process {
            child: None,
            control: Mutex::new(None),
            pid: 0,
            log_offsets: (0, 0),
        }
    }

    /// The process id of the current (or, once stopped, the last) run.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether a process was started and not stopped since.
    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The command channel of the running process.
    pub(crate) fn control(&self) -> MutexGuard<'_, Option<Control>> {
        lock(&self.control)
    }

    /// Spawns `cmd` with its stdin piped (the lifeline and, for ejabberd,
    /// the command channel), its stdout and stderr appended to the console
    /// log (unless `stdout_reader` takes stdout), in its own process group,
    /// with an environment scrubbed of service-manager and Erlang settings.
    pub(crate) fn spawn(
        &mut self,
        mut cmd: Command,
        layout: &Layout,
        stdout_reader: Option<StdoutReader>,
    ) -> io::Result<()> {
        debug_assert!(self.child.is_none());
        let console = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&layout.console_log)
            .map_err(|e| annotate(e, &format!("cannot open {}", layout.console_log.display())))?;
        let file_len = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        self.log_offsets = (file_len(&layout.server_log), file_len(&layout.console_log));
        cmd.stdin(Stdio::piped())
            .stdout(if stdout_reader.is_some() {
                Stdio::piped()
            } else {
                Stdio::from(console.try_clone()?)
            })
            .stderr(Stdio::from(console.try_clone()?))
            // Our own process group: a Ctrl-C meant for the test runner
            // does not hit the server directly (it shuts down via the
            // stdin watchdog instead), and a SIGKILL can reach its helpers.
            .process_group(0)
            // Never let the server talk to a service manager or pick up
            // Erlang flags from the environment of the tests.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("ERL_FLAGS")
            .env_remove("ERL_AFLAGS")
            .env_remove("ERL_ZFLAGS");
        let program = format!("{:?}", cmd.get_program());
        let mut child = cmd
            .spawn()
            .map_err(|e| annotate(e, &format!("cannot run {program}")))?;
        self.pid = child.id();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        self.child = Some(child);
        let replies = match (stdout, stdout_reader) {
            (Some(stdout), Some(reader)) => Some(reader(stdout, console)?),
            _ => None,
        };
        if let Some(stdin) = stdin {
            *self.control() = Some(Control { stdin, replies });
        }
        Ok(())
    }

    /// Polls (bounded by [`READY_TIMEOUT`]) until our process listens on
    /// `addr` and answers a stream header for `domain` with stream
    /// features.
    pub(crate) fn wait_ready(
        &mut self,
        addr: SocketAddr,
        domain: &str,
        layout: &Layout,
    ) -> Result<(), NotReady> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let child = self
                .child
                .as_mut()
                .ok_or_else(|| NotReady::Io(io::Error::other("server process vanished")))?;
            if let Some(status) = child.try_wait().map_err(NotReady::Io)? {
                let kind = if self.log_says_addr_in_use(layout) {
                    io::ErrorKind::AddrInUse
                } else {
                    io::ErrorKind::Other
                };
                return Err(NotReady::Failed(
                    kind,
                    format!("the server exited ({status})"),
                ));
            }
            match net::listener_owner(addr.port(), self.pid) {
                net::Owner::Us | net::Owner::Unknown => {
                    if net::probe_stream(addr, domain) {
                        return Ok(());
                    }
                }
                net::Owner::Other => {
                    return Err(NotReady::Failed(
                        io::ErrorKind::AddrInUse,
                        "another process listens on the port".to_owned(),
                    ));
                }
                net::Owner::Nobody => {
                    // Prosody keeps running when it cannot bind; notice it
                    // from its log instead of waiting for the timeout.
                    if self.log_says_addr_in_use(layout) {
                        return Err(NotReady::Failed(
                            io::ErrorKind::AddrInUse,
                            "the server could not bind the port".to_owned(),
                        ));
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(NotReady::Failed(
                    io::ErrorKind::TimedOut,
                    format!("not ready after {} s", READY_TIMEOUT.as_secs()),
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Whether this run's logs say that the port could not be bound.
    fn log_says_addr_in_use(&self, layout: &Layout) -> bool {
        let log = read_from(&layout.server_log, self.log_offsets.0)
            + &read_from(&layout.console_log, self.log_offsets.1);
        log.contains("Failed to open server port")
            || log.contains("eaddrinuse")
            || log.contains("address already in use")
    }

    /// Stops the process and waits for it to exit. Idempotent. `ask`
    /// may request a stop over the command channel (returning whether it
    /// did); the process then gets [`STOP_GRACE`] to exit before
    /// `SIGTERM`, and as long again before `SIGKILL`.
    pub(crate) fn stop(&mut self, ask: impl FnOnce(&mut Control) -> bool) {
        if let Some(mut child) = self.child.take() {
            let asked = self.control().as_mut().is_some_and(ask);
            terminate(&mut child, asked);
        }
        *self.control() = None;
    }
}

/// Stops and reaps `child`: if it was `already_asked` to stop, gives it
/// [`STOP_GRACE`] to exit; then sends `SIGTERM` and waits up to
/// [`STOP_GRACE`]; then `SIGKILL`s its process group.
fn terminate(child: &mut Child, already_asked: bool) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    if already_asked && wait_for_exit(child, STOP_GRACE) {
        return;
    }
    // SAFETY: plain syscall; `pid` is our unreaped child, so it cannot have
    // been recycled for another process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    if wait_for_exit(child, STOP_GRACE) {
        return;
    }
    // SAFETY: as above; the child leads its own process group (see
    // `process_group(0)`), still unreaped, so `-pid` is that group.
    unsafe { libc::kill(-pid, libc::SIGKILL) };
    let _ = child.wait();
}

/// Polls until `child` has exited (and is reaped) or `timeout` passes.
fn wait_for_exit(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(EXIT_POLL_INTERVAL),
        }
    }
}
