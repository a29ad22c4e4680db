//! Port allocation and readiness checks.

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Mutex;
use std::time::Duration;

use crate::raw::{has_complete_features, stream_header, RawClient};
use crate::util::lock;

/// Ports handed to servers of this process that are still alive. The
/// kernel may return a port from `bind(:0)` again as soon as we close the
/// probe socket, so without this two servers started in parallel threads
/// could be given the same port.
static LEASED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A free loopback port reserved for one server of this process until
/// dropped.
pub(crate) struct PortLease(u16);

impl PortLease {
    /// Picks a free port by binding `127.0.0.1:0`. The socket is closed
    /// again before the server binds the port, so another process may still
    /// take it in between; the readiness check detects that (see
    /// [`listener_owner`]) and the caller retries with a new port.
    pub(crate) fn new() -> io::Result<PortLease> {
        let mut leased = lock(&LEASED);
        for _ in 0..64 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .map_err(|e| {
                    crate::util::annotate(e, "cannot bind 127.0.0.1:0 to pick a free port")
                })?
                .port();
            if leased.insert(port) {
                return Ok(PortLease(port));
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no free loopback port found",
        ))
    }

    pub(crate) fn port(&self) -> u16 {
        self.0
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        lock(&LEASED).remove(&self.0);
    }
}

/// Who listens on `127.0.0.1:port`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The process `pid` does.
    Us,
    /// Some other process does (the port was taken before our server bound
    /// it): connecting would talk to the wrong server.
    Other,
    /// Nobody (yet).
    Nobody,
    /// `/proc` could not tell (not Linux?); fall back to probing.
    Unknown,
}

/// Finds out from `/proc` whether the listening socket on `127.0.0.1:port`
/// (or `0.0.0.0:port`) belongs to process `pid`.
pub(crate) fn listener_owner(port: u16, pid: u32) -> Owner {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return Owner::Unknown;
    };
    let inodes = listening_inodes(&table, port);
    if inodes.is_empty() {
        return Owner::Nobody;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Owner::Unknown;
    };
    for fd in fds.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                if inodes.iter().any(|i| i == inode) {
                    return Owner::Us;
                }
            }
        }
    }
    Owner::Other
}

/// Socket inodes of the LISTEN entries on `127.0.0.1:port` or
/// `0.0.0.0:port` in the text of `/proc/net/tcp`.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    const TCP_LISTEN: &str = "0A";
    let wanted = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let (local, state, inode) = (cols.get(1)?, cols.get(3)?, cols.get(9)?);
            (wanted.iter().any(|w| w == local) && *state == TCP_LISTEN).then(|| inode.to_string())
        })
        .collect()
}

/// Whether anything listens on TCP `port` on any local address (IPv4 or
/// IPv6).
pub(crate) fn anyone_listens(port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|path| {
        std::fs::read_to_string(path).is_ok_and(|table| {
            table.lines().skip(1).any(|line| {
                let cols: Vec<&str> = line.split_whitespace().collect();
                cols.get(1).is_some_and(|l| l.ends_with(&suffix)) && cols.get(3) == Some(&"0A")
            })
        })
    })
}

/// Opens a client stream to `domain` and reports whether the server
/// answered with its stream features, i.e. the virtual host is up and
/// users can log in. Bounded by about two seconds.
pub(crate) fn probe_stream(addr: SocketAddr, domain: &str) -> bool {
    let Ok(mut c) = RawClient::connect_timeout(addr, Duration::from_millis(500)) else {
        return false;
    };
    c.set_timeout(Duration::from_secs(2));
    // A stream error (the host is not up yet) ends the wait too.
    let ready = c.send(&stream_header(domain)).is_ok()
        && c.read_until("stream features", |b| {
            b.contains("stream:error") || has_complete_features(b)
        })
        .is_ok_and(|reply| !reply.contains("stream:error"));
    c.close();
    ready
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:61A9 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:61A9 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 20 4 30 10 -1\n\
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 0x61A9), vec!["123456".to_string()]);
        assert_eq!(listening_inodes(table, 22), vec!["777".to_string()]);
        assert!(listening_inodes(table, 5222).is_empty());
    }

    #[test]
    fn finds_own_listener() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(listener_owner(port, std::process::id()), Owner::Us);
        assert_ne!(listener_owner(port, 1), Owner::Us);
        drop(l);
        assert_eq!(listener_owner(port, std::process::id()), Owner::Nobody);
    }

    #[test]
    fn leases_are_unique() {
        let leases: Vec<PortLease> = (0..50).map(|_| PortLease::new().unwrap()).collect();
        let ports: BTreeSet<u16> = leases.iter().map(|l| l.port()).collect();
        assert_eq!(ports.len(), leases.len());
    }
}
