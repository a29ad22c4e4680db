//! Keeping Iroh on loopback.
//!
//! iroh 0.35 always runs a port mapper (UPnP, PCP, NAT-PMP) that probes the
//! default gateway, and there is no switch to turn it off. Binding to
//! 127.0.0.1 and leaving out discovery and public relays is therefore not
//! enough: the only way to be sure nothing leaves the machine is a network
//! namespace whose only interface is loopback. [`isolate`] moves the calling
//! thread (and every thread and process it starts later) into such a
//! namespace; [`loopback_only`] is the guard the harness checks before it
//! starts any endpoint.

use std::io;

/// True if the calling thread's network namespace has no interface but `lo`.
pub fn loopback_only() -> bool {
    // `thread-self`, not `self`: network namespaces are per thread, and
    // `/proc/self/net` shows the main thread's.
    match std::fs::read_to_string("/proc/thread-self/net/dev") {
        Ok(dev) => dev
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .all(|name| name.trim() == "lo"),
        Err(_) => false,
    }
}

/// Moves the calling thread into a new network namespace with only an
/// up loopback interface. Does nothing if it already is in one.
///
/// Call it before any other thread exists (first thing in `main`, or from a
/// constructor in a test binary): threads started earlier stay outside. As
/// root it uses `unshare(CLONE_NEWNET)`; otherwise it tries a new user
/// namespace too, which the kernel only allows in a single-threaded process.
pub fn isolate() -> io::Result<()> {
    if loopback_only() {
        return Ok(());
    }
    // SAFETY: unshare only changes the calling thread's namespaces.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc != 0 {
        // SAFETY: as above.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    loopback_up()?;
    if loopback_only() {
        Ok(())
    } else {
        Err(io::Error::other("still not a loopback-only namespace"))
    }
}

/// Sets `lo` up: a new namespace starts with it down.
fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket/ioctl calls on a zeroed `ifreq` whose name is a
    // NUL-terminated "lo"; the socket is closed on every path.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let result = if libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            Err(io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &req) < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        libc::close(fd);
        result
    }
}
