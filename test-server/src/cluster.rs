//! [`EjabberdCluster`]: ejabberd nodes joined in one Mnesia cluster on
//! loopback, each a [`TestServer`] of its own.
//!
//! How the nodes find each other (see `ejabberd::ClusterNode`): Erlang
//! distribution without `epmd`. Every node of a cluster listens for
//! distribution on the same free port (`-erl_epmd_port`), each on its own
//! address of a random `127.A.B.0/24` (node `i` is `nI@127.A.B.(I+1)`, its
//! listener bound to that address only), and every node looks for every
//! other on that port. The cookie is random per cluster and sits in each
//! node's `$HOME/.erlang.cookie` (mode 0400). So two clusters side by
//! side do not meet, nothing is left running when the nodes stop, and the
//! machine's `epmd` (port 4369) is never asked.
//!
//! The first node starts as a single server does. Each other node starts
//! as a bare Erlang VM (the crate's command loop, no ejabberd) and runs
//! ejabberd's own join (`ejabberd_cluster_mnesia:join/1`, what
//! `ejabberdctl join_cluster` runs) through the command loop: it drops
//! that node's fresh Mnesia schema, copies every table from the first
//! node, and starts ejabberd there. Later starts of a node
//! ([`TestServer::restart`]) are ordinary ones: its database already
//! knows the cluster. The cluster is formed when every node lists all nodes in
//! `ejabberd_cluster:get_nodes()` (Mnesia's running database nodes, what
//! `ejabberdctl list_cluster` prints).

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use crate::accounts::{random_password, validate_username};
use crate::ejabberd::ClusterNode;
use crate::{net, Options, ServerKind, TestServer};

/// How many fresh addresses and ports [`EjabberdCluster::start`] tries
/// when the distribution port turns out to be taken.
const ATTEMPTS: usize = 3;
/// How long the cluster may take to show every node, and an account to
/// reach every node, once the joins are done.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Interval between polls of the nodes' view of the cluster.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long one query of a node may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(15);

/// Several ejabberd nodes serving one domain (`localhost` unless
/// [`Options::domain`] says otherwise) with one MUC service, joined in one
/// cluster on loopback.
///
/// Each node is a [`TestServer`] with its own client port
/// ([`TestServer::c2s_addr`]), directory and process; accounts, rooms and
/// sessions are the cluster's (Mnesia replicates them). A client may
/// connect to any node; a room lives on the node where it was created
/// (see [`EjabberdCluster::room_node`]), and its occupants on other nodes
/// reach it over Erlang distribution.
///
/// [`TestServer::restart`] on a node ([`EjabberdCluster::node_mut`])
/// brings it back into the cluster and blocks until it is (its Mnesia is
/// connected to every other node that is up); [`TestServer::stop`] takes
/// it out until then. If every node is stopped, restart the one stopped
/// last first: the others wait for its newer copy of the database (Mnesia)
/// and do not become ready without it. Dropping the cluster stops every
/// node.
///
/// ```no_run
/// use xmpp_test_server::{EjabberdCluster, Options};
///
/// let mut cluster = EjabberdCluster::start(2, Options::ejabberd())?;
/// let (jid, password) = cluster.account("alice")?;
/// for i in 0..cluster.len() {
///     println!("{jid} / {password} logs in at {}", cluster.node(i).c2s_addr());
/// }
/// cluster.node_mut(1).restart()?; // back in the cluster when this returns
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct EjabberdCluster {
    // Declared first: the nodes stop before the port lease is given back.
    nodes: Vec<TestServer>,
    /// The Erlang node names, `nodes[i]` is `names[i]`.
    names: Vec<String>,
    /// The distribution port every node listens on (at its own address).
    _dist_port: net::PortLease,
}

impl EjabberdCluster {
    /// Starts `nodes` (at least 2) ejabberd nodes configured by `opts`
    /// (whose [`kind`](Options::kind) must be ejabberd), joins them in one
    /// cluster, and blocks until every node accepts clients and every node
    /// sees all nodes in the cluster.
    ///
    /// The first node starts, then the others join it in turn (each
    /// starts as a bare Erlang VM, and ejabberd's `join_cluster` copies
    /// the cluster's database and starts ejabberd there): about 4 s for
    /// two nodes on a quiet 2-core machine. With [`Options::tls`] every node has its own throwaway
    /// CA ([`TestServer::ca_file`] of that node).
    pub fn start(nodes: usize, opts: Options) -> io::Result<EjabberdCluster> {
        if nodes < 2 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a cluster needs at least 2 nodes, not {nodes}"),
            ));
        }
        if nodes > 250 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("at most 250 nodes fit in one 127.A.B.0/24, not {nodes}"),
            ));
        }
        if opts.kind != ServerKind::Ejabberd {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("only ejabberd runs as a cluster, not {}", opts.kind),
            ));
        }
        let mut last_err = None;
        for _ in 0..ATTEMPTS {
            match Self::try_start(nodes, &opts) {
                // The distribution port was taken at one of our addresses
                // between our check and the node's bind: new addresses and
                // port (rare).
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_err = Some(e),
                result => return result,
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("no free distribution port found")))
    }

    /// One attempt of [`EjabberdCluster::start`].
    fn try_start(count: usize, opts: &Options) -> io::Result<EjabberdCluster> {
        let (dist_port, nodes) = Self::pick_nodes(count)?;
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        // The first node starts alone; the others then start without
        // ejabberd and join its cluster (which starts ejabberd on them),
        // one at a time, as each join changes the cluster's Mnesia schema.
        // Any failure drops (stops) the nodes that did start.
        let mut started = Vec::with_capacity(count);
        for mut node in nodes {
            if !started.is_empty() {
                node.join = Some(names[0].clone());
            }
            started.push(TestServer::start_as(opts.clone(), Some(node))?);
        }
        let cluster = EjabberdCluster {
            nodes: started,
            names,
            _dist_port: dist_port,
        };
        cluster.wait_formed()?;
        Ok(cluster)
    }

    /// A random `127.A.B.0/24`, a distribution port that is free on every
    /// node's address of it, and a random cookie.
    fn pick_nodes(count: usize) -> io::Result<(net::PortLease, Vec<ClusterNode>)> {
        let cookie = random_password()?;
        for _ in 0..16 {
            let random = random_password()?;
            // Two bytes of the random hex, kept off 0 and 255.
            let byte = |at: usize| u8::from_str_radix(&random[at..at + 2], 16).map(|b| b % 254 + 1);
            let (a, b) = match (byte(0), byte(2)) {
                (Ok(a), Ok(b)) => (a, b),
                _ => continue,
            };
            let port = net::PortLease::new()?;
            let ips: Vec<Ipv4Addr> = (1..=count)
                .map(|i| Ipv4Addr::new(127, a, b, i as u8))
                .collect();
            // Checked by binding (and closing again) as the lease is on
            // 127.0.0.1 only.
            if ips
                .iter()
                .all(|ip| TcpListener::bind((*ip, port.port())).is_ok())
            {
                let nodes = ips
                    .iter()
                    .enumerate()
                    .map(|(i, ip)| ClusterNode {
                        name: format!("n{i}@{ip}"),
                        ip: *ip,
                        dist_port: port.port(),
                        cookie: cookie.clone(),
                        join: None,
                    })
                    .collect();
                return Ok((port, nodes));
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no loopback addresses with a free distribution port found",
        ))
    }

    /// Waits until every node lists every node in its cluster.
    fn wait_formed(&self) -> io::Result<()> {
        let deadline = Instant::now() + SYNC_TIMEOUT;
        for i in 0..self.nodes.len() {
            loop {
                let seen = self.cluster_nodes(i)?;
                if self.names.iter().all(|n| seen.contains(n)) {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the cluster did not form: node {i} sees {seen:?} of {:?}",
                            self.names
                        ),
                    ));
                }
                std::thread::sleep(POLL_INTERVAL);
            }
        }
        Ok(())
    }

    /// How many nodes the cluster has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always `false`: a cluster has at least two nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i` (0-based). Panics if `i >= len()`.
    pub fn node(&self, i: usize) -> &TestServer {
        &self.nodes[i]
    }

    /// Node `i`, to [`restart`](TestServer::restart) or
    /// [`stop`](TestServer::stop) it. A restarted node is back in the
    /// cluster when `restart` returns. Panics if `i >= len()`.
    pub fn node_mut(&mut self, i: usize) -> &mut TestServer {
        &mut self.nodes[i]
    }

    /// The Erlang node name of node `i` (`nI@127.A.B.C`), as ejabberd's
    /// logs and `list_cluster` show it. Panics if `i >= len()`.
    pub fn node_name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// The names of the nodes that node `i` sees in its cluster
    /// (`ejabberd_cluster:get_nodes()`, what `ejabberdctl list_cluster`
    /// prints). Fails if node `i` is stopped.
    pub fn cluster_nodes(&self, i: usize) -> io::Result<Vec<String>> {
        let reply = self.nodes[i].eval("ejabberd_cluster:get_nodes().", QUERY_TIMEOUT)?;
        parse_atom_list(&reply)
            .ok_or_else(|| io::Error::other(format!("node {i} listed its cluster as {reply}")))
    }

    /// The XMPP domain every node serves.
    pub fn domain(&self) -> &str {
        self.nodes[0].domain()
    }

    /// The MUC service domain (the same on every node).
    pub fn muc_domain(&self) -> &str {
        self.nodes[0].muc_domain()
    }

    /// Creates the account `name@<domain>` (see [`TestServer::account`])
    /// and returns `(bare JID, password)` once every running node has it:
    /// it logs in on any node.
    pub fn account(&mut self, name: &str) -> io::Result<(String, String)> {
        let running = self.running();
        let first = *running.first().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "no node of the cluster runs")
        })?;
        let account = self.nodes[first].account(name)?;
        // Mnesia commits on the creating node first and on the others
        // moments later: wait until the record is on every running node.
        let user = validate_username(name)?;
        let expr = format!(
            "length(mnesia:dirty_read(passwd, {{<<\"{user}\">>, <<\"{}\">>}})).",
            self.domain()
        );
        let deadline = Instant::now() + SYNC_TIMEOUT;
        for &i in &running {
            while self.nodes[i].eval(&expr, QUERY_TIMEOUT)? != "1" {
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the account {} did not reach node {i}", account.0),
                    ));
                }
                std::thread::sleep(POLL_INTERVAL);
            }
        }
        Ok(account)
    }

    /// Which node runs the room `room@<muc domain>` now (the node where it
    /// was created: the node of the client whose presence created it), or
    /// `None` if the room does not exist. Asks the first running node
    /// (the room table is the cluster's).
    pub fn room_node(&self, room: &str) -> io::Result<Option<usize>> {
        let room = validate_username(room)?;
        let first = *self.running().first().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "no node of the cluster runs")
        })?;
        let expr = format!(
            "case mnesia:dirty_read(muc_online_room, {{<<\"{room}\">>, <<\"{}\">>}}) of \
             [] -> none; [R] -> node(element(3, R)) end.",
            self.muc_domain()
        );
        let reply = self.nodes[first].eval(&expr, QUERY_TIMEOUT)?;
        if reply == "none" {
            return Ok(None);
        }
        let name = reply.trim_matches('\'');
        self.names
            .iter()
            .position(|n| n == name)
            .map(Some)
            .ok_or_else(|| io::Error::other(format!("the room {room} is on {reply}")))
    }

    /// The nodes that run now.
    fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_running())
            .collect()
    }
}

impl Drop for EjabberdCluster {
    fn drop(&mut self) {
        // All at once: each node's stop waits for its process to exit.
        std::thread::scope(|s| {
            for node in &mut self.nodes {
                s.spawn(move || node.stop());
            }
        });
    }
}

impl std::fmt::Debug for EjabberdCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EjabberdCluster")
            .field("names", &self.names)
            .field("nodes", &self.nodes)
            .finish()
    }
}

/// A list of atoms as `~w` prints it (`['n0@127.1.2.1',n1]`), or `None`.
fn parse_atom_list(text: &str) -> Option<Vec<String>> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    if inner.is_empty() {
        return Some(Vec::new());
    }
    Some(
        inner
            .split(',')
            .map(|atom| atom.trim().trim_matches('\'').to_owned())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atom_lists() {
        assert_eq!(parse_atom_list("[]"), Some(vec![]));
        assert_eq!(
            parse_atom_list("['n0@127.1.2.1','n1@127.1.2.2']"),
            Some(vec!["n0@127.1.2.1".to_owned(), "n1@127.1.2.2".to_owned()])
        );
        assert_eq!(parse_atom_list("{badrpc,nodedown}"), None);
    }

    #[test]
    fn refuses_what_is_not_a_cluster() {
        let err = EjabberdCluster::start(1, Options::ejabberd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let err = EjabberdCluster::start(2, Options::prosody()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
    }

    #[test]
    fn cluster_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<EjabberdCluster>();
    }
}
