//! Integration tests of [`EjabberdCluster`]: two real ejabberd nodes
//! joined in one cluster on loopback, clients on different nodes.

use std::time::Instant;

use xmpp_test_server::raw::RawClient;
use xmpp_test_server::{EjabberdCluster, Options};

/// Whether process `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let exists = unsafe { libc::kill(pid as libc::pid_t, 0) == 0 };
    exists
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                stat.rsplit(')')
                    .next()
                    .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
}

fn start() -> EjabberdCluster {
    let t = Instant::now();
    let cluster = EjabberdCluster::start(2, Options::ejabberd()).expect("cluster starts");
    eprintln!("cluster of 2 formed in {:?}", t.elapsed());
    cluster
}

fn login(cluster: &EjabberdCluster, node: usize, jid: &str, password: &str) -> RawClient {
    let server = cluster.node(node);
    RawClient::login(server.c2s_addr(), server.domain(), jid, password, None)
        .unwrap_or_else(|e| panic!("login as {jid} on node {node} failed: {e}"))
}

/// Enters `room` as `nick` and returns what arrived up to the
/// self-presence (status 110).
fn enter(c: &mut RawClient, room: &str, nick: &str) -> String {
    c.send(&format!(
        "<presence to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'>\
         <history maxstanzas='0'/></x></presence>"
    ))
    .unwrap();
    c.read_until(&format!("self-presence in {room}"), |b| {
        b.contains("code='110'") || b.contains("code=\"110\"")
    })
    .unwrap_or_else(|e| panic!("entering {room} as {nick}: {e}"))
}

fn groupchat(c: &mut RawClient, room: &str, body: &str) {
    c.send(&format!(
        "<message to='{room}' type='groupchat' id='{body}'><body>{body}</body></message>"
    ))
    .unwrap();
}

/// Waits for the groupchat `body` from `nick` of `room`.
fn receive(c: &mut RawClient, room: &str, nick: &str, body: &str) {
    let from = [
        format!("from='{room}/{nick}'"),
        format!("from=\"{room}/{nick}\""),
    ];
    c.read_until(&format!("{body} from {nick}"), |b| {
        b.contains(&format!("<body>{body}</body>")) && from.iter().any(|f| b.contains(f.as_str()))
    })
    .unwrap_or_else(|e| panic!("waiting for {body}: {e}"));
}

#[test]
fn cluster_forms_shares_accounts_and_drop_stops_every_node() {
    let mut cluster = start();
    assert_eq!(cluster.len(), 2);
    let names = [
        cluster.node_name(0).to_owned(),
        cluster.node_name(1).to_owned(),
    ];
    assert_ne!(names[0], names[1]);
    for i in 0..2 {
        let mut seen = cluster.cluster_nodes(i).unwrap();
        seen.sort();
        let mut want = names.to_vec();
        want.sort();
        // Exactly these two: a cluster started by a test running beside
        // this one is not part of it.
        assert_eq!(seen, want, "node {i}'s view of the cluster");
        assert!(cluster.node(i).c2s_addr().ip().is_loopback());
    }
    assert_ne!(cluster.node(0).c2s_addr(), cluster.node(1).c2s_addr());
    assert_eq!(cluster.muc_domain(), "conference.localhost");

    // An account made once logs in on both nodes; a wrong password on
    // neither.
    let t = Instant::now();
    let (jid, password) = cluster.account("alice").unwrap();
    eprintln!("account on every node in {:?}", t.elapsed());
    assert_eq!(jid, "alice@localhost");
    for node in 0..2 {
        login(&cluster, node, &jid, &password).close();
        let mut c = RawClient::connect(cluster.node(node).c2s_addr()).unwrap();
        c.open_stream("localhost").unwrap();
        assert!(!c.auth_plain(&jid, "wrong").unwrap(), "node {node}");
    }
    assert_eq!(
        cluster.account("alice").unwrap_err().kind(),
        std::io::ErrorKind::AlreadyExists
    );

    // The whole cluster stops (node 0 first) and comes back, the node
    // that stopped last first: Mnesia on the other one waits for the
    // newest copy of the tables before ejabberd serves anyone (started
    // first and alone it never got ready).
    cluster.node_mut(0).stop();
    cluster.node_mut(1).stop();
    let t = Instant::now();
    cluster.node_mut(1).restart().unwrap();
    cluster.node_mut(0).restart().unwrap();
    eprintln!("whole cluster back in {:?}", t.elapsed());
    for node in 0..2 {
        assert_eq!(cluster.cluster_nodes(node).unwrap().len(), 2);
        login(&cluster, node, &jid, &password).close();
    }

    let pids = [cluster.node(0).pid(), cluster.node(1).pid()];
    let dirs = [
        cluster.node(0).dir().to_path_buf(),
        cluster.node(1).dir().to_path_buf(),
    ];
    assert!(pids.iter().all(|&p| alive(p)));
    let t = Instant::now();
    drop(cluster);
    eprintln!("cluster dropped in {:?}", t.elapsed());
    for (pid, dir) in pids.iter().zip(&dirs) {
        assert!(!alive(*pid), "node process {pid} survived the drop");
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[test]
fn room_across_nodes_survives_a_node_restart() {
    let mut cluster = start();
    let room = format!("lobby@{}", cluster.muc_domain());
    let (ja, pa) = cluster.account("alice").unwrap();
    let (jb, pb) = cluster.account("bob").unwrap();
    let mut a = login(&cluster, 0, &ja, &pa);
    let mut b = login(&cluster, 1, &jb, &pb);
    assert_eq!(cluster.room_node("lobby").unwrap(), None);
    // Bob enters first, so the room is created on his node, the one that
    // restarts below.
    enter(&mut b, &room, "bob");
    assert_eq!(cluster.room_node("lobby").unwrap(), Some(1));
    enter(&mut a, &room, "alice");
    groupchat(&mut a, &room, "a1");
    receive(&mut b, &room, "alice", "a1");
    groupchat(&mut b, &room, "b1");
    receive(&mut a, &room, "bob", "b1");

    let old_pid = cluster.node(1).pid();
    let t = Instant::now();
    cluster.node_mut(1).restart().unwrap();
    eprintln!("node 1 restarted and rejoined in {:?}", t.elapsed());
    assert!(!alive(old_pid));
    assert_eq!(cluster.cluster_nodes(0).unwrap().len(), 2);
    assert_eq!(cluster.cluster_nodes(1).unwrap().len(), 2);
    // Bob's session ended with his node.
    let closed = b
        .read_until("the end of bob's stream", |_| false)
        .unwrap_err();
    assert!(
        matches!(
            closed.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
        ),
        "{closed}"
    );
    // The room lived on node 1: it stopped with it, and told Alice, whose
    // node stayed up, that she was removed by a shutdown (332).
    let removed = a
        .read_until("alice's removal from the room", |t| {
            t.contains("code='332'") || t.contains("code=\"332\"")
        })
        .unwrap();
    assert!(removed.contains("type='unavailable'") || removed.contains("type=\"unavailable\""));
    assert_eq!(
        cluster.room_node("lobby").unwrap(),
        None,
        "the room is gone"
    );

    // Bob reconnects to node 1 and both enter again: the room works again.
    let mut b = login(&cluster, 1, &jb, &pb);
    enter(&mut b, &room, "bob");
    enter(&mut a, &room, "alice");
    assert_eq!(cluster.room_node("lobby").unwrap(), Some(1));
    groupchat(&mut a, &room, "a2");
    receive(&mut b, &room, "alice", "a2");
    groupchat(&mut b, &room, "b2");
    receive(&mut a, &room, "bob", "b2");

    // A restart of the other node (the one Alice is on, not the room's)
    // leaves the room alone: Bob stays in it, Alice comes back to it.
    cluster.node_mut(0).restart().unwrap();
    assert_eq!(cluster.room_node("lobby").unwrap(), Some(1));
    let mut a = login(&cluster, 0, &ja, &pa);
    let presence = enter(&mut a, &room, "alice");
    assert!(
        presence.contains("/bob"),
        "bob is still in the room: {presence}"
    );
    groupchat(&mut b, &room, "b3");
    receive(&mut a, &room, "bob", "b3");
    groupchat(&mut a, &room, "a3");
    receive(&mut b, &room, "alice", "a3");
}

/// Whether `text` holds a whole error message (a bounce).
fn bounced(text: &str) -> bool {
    text.find("type='error'")
        .is_some_and(|at| text[at..].contains("</message>"))
}

#[test]
fn a_crash_of_the_rooms_node_takes_the_room_without_a_word() {
    let mut cluster = start();
    let room = format!("lobby@{}", cluster.muc_domain());
    let (ja, pa) = cluster.account("alice").unwrap();
    let (jb, pb) = cluster.account("bob").unwrap();
    let mut a = login(&cluster, 0, &ja, &pa);
    let mut b = login(&cluster, 1, &jb, &pb);
    enter(&mut b, &room, "bob");
    enter(&mut a, &room, "alice");
    assert_eq!(cluster.room_node("lobby").unwrap(), Some(1));

    // Node 1 dies at once (a crash, an OOM kill): no shutdown.
    let pid = cluster.node(1).pid();
    // SAFETY: plain syscall on the pid of our own (unreaped) child.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
    // Node 0 notices within moments (the distribution connection closes)
    // and forgets the room. Until then it still routes stanzas for the
    // room to the dead node, where they vanish: wait for both.
    let t = Instant::now();
    while cluster.cluster_nodes(0).unwrap().len() > 1
        || cluster.room_node("lobby").unwrap().is_some()
    {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(90),
            "node 0 never noticed"
        );
        std::thread::yield_now();
    }
    eprintln!(
        "node 0 forgot node 1 and its room {:?} after the kill",
        t.elapsed()
    );
    // Alice, still connected, was told nothing: the first thing she gets
    // after her next message is its bounce.
    groupchat(&mut a, &room, "a1");
    let bounce = a.read_until("the bounce of a1", bounced).unwrap();
    assert!(bounce.contains("item-not-found"), "{bounce}");
    assert!(!bounce.contains("332"), "{bounce}");

    // Node 1 comes back (restart reaps the dead process first) and Bob
    // creates the room again; Alice, not an occupant of the new room,
    // is refused until she enters again.
    cluster.node_mut(1).restart().unwrap();
    assert_eq!(cluster.cluster_nodes(0).unwrap().len(), 2);
    let mut b = login(&cluster, 1, &jb, &pb);
    enter(&mut b, &room, "bob");
    groupchat(&mut a, &room, "a2");
    let bounce = a.read_until("the bounce of a2", bounced).unwrap();
    assert!(bounce.contains("not-acceptable"), "{bounce}");
    enter(&mut a, &room, "alice");
    groupchat(&mut a, &room, "a3");
    receive(&mut b, &room, "alice", "a3");
    groupchat(&mut b, &room, "b3");
    receive(&mut a, &room, "bob", "b3");
}
