//! Throwaway loopback XMPP servers (Prosody 0.12 and ejabberd 23.01 from
//! Debian) for tests, demos and benchmarks.
//!
//! [`TestServer::start`] writes a config into a fresh temporary directory,
//! starts the server as a foreground child process listening on a free port
//! of `127.0.0.1` only, and waits until it is ready to log users in. Several
//! servers can run side by side (parallel tests); nothing talks to the
//! internet (no s2s unless a [`FederatedPair`] asks for it, no HTTP, no
//! DNS for `localhost`, no ACME).
//!
//! ```no_run
//! use xmpp_test_server::{Options, TestServer};
//!
//! let server = TestServer::start(Options::prosody())?;
//! let (jid, password) = server.account("alice")?;
//! println!("log in as {jid} / {password} at {}", server.c2s_addr());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! If the server software is missing it is installed with `apt-get`
//! (serialised across threads and processes by a lock file), which needs
//! root. The servers themselves run as the current user (`root` is fine).
//!
//! Clean-up: [`TestServer`] stops the server and removes its directory when
//! dropped. Should the owning process die without running destructors (a
//! `static` server, `SIGKILL`, `process::exit`), the server notices that its
//! stdin pipe closed and shuts itself down; only the temporary directory is
//! then left behind.
//!
//! All methods block. [`TestServer::start`] and [`TestServer::restart`]
//! take about 0.2 s for Prosody and 1.5-2.5 s for ejabberd; in async
//! tests, call them from `spawn_blocking` or before entering the runtime.
//!
//! Set the environment variable `XMPP_TEST_SERVER_DEBUG=1` to make the
//! servers log at debug level (see [`TestServer::log_tail`]).
//!
//! [`EjabberdCluster`] starts several ejabberd nodes serving one domain
//! and joins them in one cluster (ejabberd's own `join_cluster`), each node
//! a [`TestServer`] with its own client port, so that members can connect
//! to different nodes of one room; restarting a node brings it back into
//! the cluster. The nodes talk Erlang distribution on loopback only,
//! without `epmd` (one free port per cluster, one `127.A.B.x` address per
//! node, a random cookie), so clusters side by side never meet and nothing
//! outlives the nodes. About 4 s to start two nodes.
//!
//! [`FederatedPair`] starts a Prosody and an ejabberd on two domains
//! (`a.example`, whose MUC service hosts the rooms, and `b.example`; which
//! software serves which is [`FederationOptions::room_host`]), talking
//! server-to-server on loopback with dialback over plaintext streams, and
//! blocks until a ping crosses s2s both ways (about 5 s). Names come from a
//! small DNS server of the pair's own on a random `127.x.y.z:53` (SRV
//! records naming each server's s2s port): Prosody runs in a private mount
//! namespace whose `/etc/resolv.conf` names only that server, ejabberd's
//! inetrc does the same, so neither asks the machine's resolver. This needs
//! root (port 53, the namespace). A hand-written s2s peer of a test can be
//! published in that DNS ([`FederatedPair::add_peer`]).
//!
//! [`raw`] is a tiny blocking XMPP client on a plain socket (SASL PLAIN,
//! string matching), for tests that must write stanzas no XMPP library
//! would build, or that check a server without one. [`proxy`] is a
//! loopback forwarder that can stop forwarding without closing (a
//! half-open connection on demand); [`script`] a scripted fake server for
//! answers no real server gives on cue.
//!
//! # Layout
//!
//! The public API is [`Options`], [`ServerKind`], [`TestServer`],
//! [`EjabberdCluster`], [`FederatedPair`] with [`FederationOptions`],
//! [`raw`], [`proxy`] and [`script`]; every other
//! module is private, one job each:
//!
//! * `options.rs`: what to run ([`ServerKind`], [`Options`]);
//! * `cluster.rs`: [`EjabberdCluster`]: node names and addresses, starting
//!   and joining the nodes, the cluster's queries (members, accounts,
//!   where a room runs);
//! * `federation.rs`: [`FederatedPair`]: the two servers' options, the
//!   DNS records, the s2s check;
//! * `dns.rs`: the pair's DNS server (A and SRV records, UDP);
//! * `server.rs`: the [`TestServer`] handle: start (with port retries),
//!   accounts, restart, stop, logs; it drives the modules below;
//! * `process.rs`: process supervision: spawning in its own process group
//!   with the stdin lifeline, polling until ready, stopping by request,
//!   `SIGTERM`, then `SIGKILL`;
//! * `prosody.rs`, `ejabberd.rs`: each server's config, command line and
//!   account creation (ejabberd's also a cluster node's distribution
//!   settings and its command loop's `eval` for the cluster's queries);
//! * `rate.rs`: the parser of [`Options::c2s_rate_limit`];
//! * `tls.rs`: the throwaway CA and certificate;
//! * `net.rs`: port leases, who listens on a port, the readiness probe;
//! * `install.rs`: `apt-get install` on demand, serialised across
//!   processes;
//! * `accounts.rs`: account names and random passwords;
//! * `files.rs`: writing config files, reading log tails;
//! * `util.rs`: error context, running commands, unique ids, the lock.

#![deny(missing_docs)]

mod accounts;
mod cluster;
mod dns;
mod ejabberd;
mod federation;
mod files;
mod install;
mod net;
mod options;
mod process;
mod prosody;
pub mod proxy;
mod rate;
pub mod raw;
pub mod script;
mod server;
mod tls;
mod util;

pub use cluster::EjabberdCluster;
pub use federation::{FederatedPair, FederationOptions};
pub use install::ensure_package;
pub use options::{Options, ServerKind};
pub use server::TestServer;

/// The XMPP domain served by every test server.
const DOMAIN: &str = "localhost";
/// The MUC service domain of every test server.
const MUC_DOMAIN: &str = "conference.localhost";
/// The XEP-0363 upload component, with [`Options::http_upload`].
const UPLOAD_DOMAIN: &str = "upload.localhost";
