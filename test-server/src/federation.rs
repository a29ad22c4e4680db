//! [`FederatedPair`]: a Prosody and an ejabberd on two domains, talking
//! server-to-server on loopback, with names from a DNS server of the pair's
//! own.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::dns::DnsServer;
use crate::raw::RawClient;
use crate::{Options, ServerKind, TestServer};

/// The domains of [`FederatedPair::server`] 0 and 1. `.example` is
/// reserved (RFC 2606, RFC 6761): no real DNS answers for it. Not `.test`:
/// libunbound (Prosody's resolver when lua-unbound is installed) answers
/// NXDOMAIN for `.test` itself, as one of its default local zones, and
/// never asks the configured nameserver.
const DOMAINS: [&str; 2] = ["a.example", "b.example"];
/// How long [`FederatedPair::start`] and [`FederatedPair::restart`] wait
/// for s2s to work in both directions.
const S2S_TIMEOUT: Duration = Duration::from_secs(30);
/// The account each server gets for the s2s check.
const PROBE_ACCOUNT: &str = "xts-s2s-probe";

/// How to set up a [`FederatedPair`].
#[derive(Clone, Debug)]
pub struct FederationOptions {
    /// The software of server 0, the one whose MUC service hosts the
    /// rooms; server 1 runs the other one. Default: Prosody.
    pub room_host: ServerKind,
    /// MUC archiving on server 0 ([`Options::muc_archive`]). Default: off.
    pub muc_archive: bool,
    /// User archives (MAM) on both servers ([`Options::user_archive`]).
    /// Default: off.
    pub user_archive: bool,
}

impl Default for FederationOptions {
    fn default() -> Self {
        FederationOptions {
            room_host: ServerKind::Prosody,
            muc_archive: false,
            user_archive: false,
        }
    }
}

/// Two servers of different software on two domains, federated over
/// loopback: server 0 serves `a.example` (and `conference.a.example`,
/// where the rooms are), server 1 serves `b.example` (and
/// `conference.b.example`). Each has an account `xts-s2s-probe` of the
/// pair's own, which it logs in to check s2s.
///
/// Everything stays on this machine: both listen for clients and for s2s on
/// free ports of `127.0.0.1`, and find each other through a small DNS
/// server the pair runs on a random `127.x.y.z:53` (`SRV` records
/// `_xmpp-server._tcp.<domain>` naming the s2s ports, `A` records naming
/// `127.0.0.1`). The servers ask nothing else: Prosody runs in a private
/// mount namespace whose `/etc/resolv.conf` names only that DNS server,
/// ejabberd's inetrc names it alone. Servers authenticate each other with
/// dialback (XEP-0220) on plaintext streams. This needs root (port 53,
/// the mount namespace), as test-server's installs do anyway.
///
/// Pairs in parallel tests do not collide (own DNS address, own ports).
/// Dropping the pair stops both servers by pid, then the DNS server.
///
/// ```no_run
/// use xmpp_test_server::{FederatedPair, FederationOptions};
///
/// let pair = FederatedPair::start(FederationOptions::default())?;
/// let (alice, _) = pair.server(0).account("alice")?; // alice@a.example
/// let (bob, _) = pair.server(1).account("bob")?; // bob@b.example
/// println!("room service {}", pair.server(0).muc_domain()); // conference.a.example
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct FederatedPair {
    // Declared before `dns` so that the servers stop first (fields drop in
    // declaration order): a stopping server may still look names up.
    servers: [TestServer; 2],
    /// The passwords of each server's [`PROBE_ACCOUNT`].
    probes: [String; 2],
    dns: DnsServer,
}

impl FederatedPair {
    /// Starts both servers (server 0 runs `opts.room_host` for `a.example`,
    /// server 1 the other software for `b.example`, each with its MUC service
    /// `conference.<domain>`), and blocks until both accept clients and a
    /// ping crosses s2s in both directions (at most 30 s after the servers
    /// are up).
    pub fn start(opts: FederationOptions) -> io::Result<FederatedPair> {
        let dns = DnsServer::start()?;
        let kinds = match opts.room_host {
            ServerKind::Prosody => [ServerKind::Prosody, ServerKind::Ejabberd],
            ServerKind::Ejabberd => [ServerKind::Ejabberd, ServerKind::Prosody],
        };
        let options = |i: usize| Options {
            domain: Some(DOMAINS[i].to_owned()),
            s2s_nameserver: Some(dns.addr()),
            muc_archive: i == 0 && opts.muc_archive,
            user_archive: opts.user_archive,
            ..Options::new(kinds[i])
        };
        let first = TestServer::start(options(0))?;
        let second = TestServer::start(options(1))?;
        let probes = [
            first.account(PROBE_ACCOUNT)?.1,
            second.account(PROBE_ACCOUNT)?.1,
        ];
        let pair = FederatedPair {
            servers: [first, second],
            probes,
            dns,
        };
        for server in &pair.servers {
            let addr = server
                .s2s_addr()
                .ok_or_else(|| io::Error::other("a federated server without an s2s port"))?;
            pair.dns.add_xmpp_server(server.domain(), addr);
            pair.dns.add_xmpp_server(server.muc_domain(), addr);
        }
        pair.wait_for_s2s()?;
        Ok(pair)
    }

    /// Server `i`: 0 is the one whose MUC service hosts the rooms, 1 the
    /// other ("remote") one.
    ///
    /// # Panics
    ///
    /// If `i` is not 0 or 1.
    pub fn server(&self, i: usize) -> &TestServer {
        &self.servers[i]
    }

    /// Server `i`, to [`TestServer::restart`] or [`TestServer::stop`] it.
    /// After a restart the other server connects again on the next stanza
    /// it routes there ([`FederatedPair::restart`] also waits until s2s
    /// works).
    ///
    /// # Panics
    ///
    /// If `i` is not 0 or 1.
    pub fn server_mut(&mut self, i: usize) -> &mut TestServer {
        &mut self.servers[i]
    }

    /// Restarts server `i` and waits until s2s works again in both
    /// directions.
    pub fn restart(&mut self, i: usize) -> io::Result<()> {
        self.servers[i].restart()?;
        self.wait_for_s2s()
    }

    /// Publishes another XMPP server for `domain` at `addr` in the pair's
    /// DNS (an `A` record and an `_xmpp-server._tcp` `SRV` record): for a
    /// hand-written s2s peer of a test, which must be reachable for the
    /// servers' dialback checks. `addr` must be a loopback address.
    pub fn add_peer(&self, domain: &str, addr: SocketAddrV4) -> io::Result<()> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{addr} is not a loopback address"),
            ));
        }
        self.dns.add_xmpp_server(domain, addr);
        Ok(())
    }

    /// The address of the pair's DNS server (UDP port 53).
    pub fn nameserver(&self) -> Ipv4Addr {
        self.dns.addr()
    }

    /// Waits until a client of each server gets an answer to a ping sent
    /// to the other server's domain: each server has then opened an
    /// outgoing s2s connection and had it accepted (dialback) by the other.
    fn wait_for_s2s(&self) -> io::Result<()> {
        let deadline = Instant::now() + S2S_TIMEOUT;
        for (i, server) in self.servers.iter().enumerate() {
            let other = self.servers[1 - i].domain();
            loop {
                let last = match ping_remote(server, &self.probes[i], other) {
                    Ok(()) => break,
                    Err(e) => e,
                };
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "s2s from {} to {other} does not work after {} s: {last}\n\
                             --- {} log ---\n{}\n--- {} log ---\n{}",
                            server.domain(),
                            S2S_TIMEOUT.as_secs(),
                            server.kind(),
                            server.log_tail(30),
                            self.servers[1 - i].kind(),
                            self.servers[1 - i].log_tail(30),
                        ),
                    ));
                }
                // The failure was an answer (a bounce while the peer was
                // still connecting), not a wait: pace the retries.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for FederatedPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederatedPair")
            .field("servers", &self.servers)
            .field("nameserver", &self.dns.addr())
            .finish()
    }
}

/// Logs in as the probe account of `server` and pings `domain`; `Ok` when
/// the result came back.
fn ping_remote(server: &TestServer, password: &str, domain: &str) -> io::Result<()> {
    let jid = format!("{PROBE_ACCOUNT}@{}", server.domain());
    let mut c = RawClient::login(server.c2s_addr(), server.domain(), &jid, password, None)?;
    c.set_timeout(S2S_TIMEOUT);
    let reply = c.iq(
        "s2s1",
        &format!("<iq type='get' id='s2s1' to='{domain}'><ping xmlns='urn:xmpp:ping'/></iq>"),
    );
    c.close();
    let reply = reply?;
    if reply.contains("type='result'") || reply.contains("type=\"result\"") {
        Ok(())
    } else {
        Err(io::Error::other(format!("ping {domain}: {reply}")))
    }
}
