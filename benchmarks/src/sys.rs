//! What the machine is, how busy it is, and what a process holds.

use serde::Serialize;

/// VmRSS of this process in KiB.
pub fn rss_kib() -> Option<u64> {
    status_field("/proc/self/status", "VmRSS:")
}

/// VmRSS of another process in KiB.
pub fn rss_kib_of(pid: u32) -> Option<u64> {
    status_field(&format!("/proc/{pid}/status"), "VmRSS:")
}

fn status_field(path: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Bytes sent over the loopback interface of this network namespace.
///
/// The benchmark runs in a namespace of its own (see `main`), so this
/// counts its own traffic only: every process it started, every hop.
pub fn loopback_bytes() -> Option<u64> {
    let dev = std::fs::read_to_string("/proc/self/net/dev").ok()?;
    let line = dev.lines().find(|l| l.trim_start().starts_with("lo:"))?;
    let fields: Vec<&str> = line.split(':').nth(1)?.split_whitespace().collect();
    // Receive: bytes packets errs drop fifo frame compressed multicast;
    // then transmit bytes. On loopback every packet is both.
    fields.get(8)?.parse().ok()
}

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub memory_gib: f64,
    pub load_before: String,
    pub load_after: String,
    pub prosody: String,
    pub ejabberd: String,
    pub rustc: String,
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn package_version(name: &str) -> String {
    command_line("dpkg-query", &["-W", "-f", "${Version}", name])
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

impl Machine {
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "?".into());
        let mem_kib = status_field("/proc/meminfo", "MemTotal:").unwrap_or(0);
        Machine {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            memory_gib: mem_kib as f64 / (1024.0 * 1024.0),
            load_before: loadavg(),
            load_after: String::new(),
            prosody: package_version("prosody"),
            ejabberd: package_version("ejabberd"),
            rustc: command_line("rustc", &["--version"]),
        }
    }
}
