//! A server that refuses to resume the lost session with a
//! `<failed xmlns='urn:xmpp:sm:3'/>` that carries no `h` (XEP-0198 makes it
//! optional; ejabberd sends it so after a restart, and xmpp-parsers 0.23
//! cannot parse it): the client must give up on resuming and bind a new
//! session, instead of trying the same resumption for ever.
//!
//! The server here is a script on a loopback socket, because the failure
//! needs an exact answer at an exact moment that a real server gives only
//! now and then (the ejabberd restart case of the suite hit it in about one
//! run in three).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use webxdc_realtime_xmpp::{Client, ClientEvent, Config, ConnectionEvent};
use xmpp_test_server::script::{ScriptConn, ScriptServer};

/// A hang guard only: every step here is a loopback round trip.
const PATIENCE: Duration = Duration::from_secs(20);

/// What the script saw, for the assertions.
#[derive(Default)]
struct Seen {
    resumptions: AtomicUsize,
    bindings: AtomicUsize,
}

/// One connection: log in, then refuse any resumption (and hang up, as the
/// client then closes), or bind and enable stream management. The first
/// connection that bound a session is closed when `drop_first` fires.
fn serve(mut conn: ScriptConn, seen: &Seen, drop_first: Option<mpsc::Receiver<()>>) {
    if conn.log_in(true).is_none() {
        return;
    }
    let Some((what, head)) = conn.until(&["</iq>", "<resume"]) else {
        return;
    };
    if what == 1 {
        seen.resumptions.fetch_add(1, Ordering::SeqCst);
        conn.until(&["/>", "</resume>"]);
        conn.say("<failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>");
        // The client either binds on this stream or hangs up.
        let Some((_, head)) = conn.until(&["</iq>"]) else {
            return;
        };
        return bound(conn, seen, &head, None);
    }
    bound(conn, seen, &head, drop_first);
}

fn bound(mut conn: ScriptConn, seen: &Seen, bind_iq: &str, drop_first: Option<mpsc::Receiver<()>>) {
    let n = seen.bindings.fetch_add(1, Ordering::SeqCst) + 1;
    conn.bind(bind_iq, &format!("alice@localhost/r{n}"));
    match drop_first {
        Some(close) => {
            // Enable stream management (so that a resumption follows the
            // loss), then lose the connection when told.
            if conn.until(&["<enable"]).is_none() {
                return;
            }
            conn.until(&["/>", "</enable>"]);
            conn.say("<enabled xmlns='urn:xmpp:sm:3' id='lost-session' resume='true'/>");
            let _ = close.recv();
        }
        // Keep the session: read until the client goes.
        None => conn.drain(),
    }
}

#[tokio::test]
async fn a_refused_resumption_without_h_ends_in_a_new_session() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let seen = Arc::new(Seen::default());
    let (close_first, first_closed) = mpsc::channel();
    let script = {
        let seen = seen.clone();
        let drop_first = Mutex::new(Some(first_closed));
        ScriptServer::start(move |conn, _| {
            let first = drop_first.lock().unwrap_or_else(|p| p.into_inner()).take();
            serve(conn, &seen, first)
        })
        .expect("script server")
    };
    let addr = script.addr();

    let config = Config::new("alice@localhost".parse().expect("jid"), "secret")
        .danger_plaintext_loopback_only(addr)
        .with_connect_timeout(PATIENCE);
    let client = Client::connect(config).await.expect("first login");
    let mut events = client.events();
    assert_eq!(seen.bindings.load(Ordering::SeqCst), 1);

    // The server goes away under the session.
    let _ = close_first.send(());
    let resumed = tokio::time::timeout(PATIENCE, async {
        loop {
            match events.recv().await {
                Some(ClientEvent::Connection(ConnectionEvent::Reconnected { resumed })) => {
                    return resumed
                }
                Some(_) => continue,
                None => panic!("the client closed"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no new session within {PATIENCE:?}: {} resumption attempts, {} bindings",
            seen.resumptions.load(Ordering::SeqCst),
            seen.bindings.load(Ordering::SeqCst)
        )
    });
    assert!(!resumed, "the server refused the resumption");
    assert_eq!(
        seen.resumptions.load(Ordering::SeqCst),
        1,
        "the refused resumption is tried once"
    );
    assert_eq!(seen.bindings.load(Ordering::SeqCst), 2, "one new session");
    assert_eq!(client.jid().to_string(), "alice@localhost/r2");
    drop(script);
}

/// A server that binds every session and drops it at once with a stream
/// error: the client reconnects (a stream error ends a stream, not the
/// account) but waits longer each time instead of reconnecting in a tight
/// loop. Without the wait, six connections took a few milliseconds.
#[tokio::test]
async fn sessions_dropped_at_once_are_retried_with_a_growing_delay() {
    let script = ScriptServer::start(|mut conn, n| {
        if conn.log_in(false).is_none() {
            return;
        }
        let Some((_, head)) = conn.until(&["</iq>"]) else {
            return;
        };
        conn.bind(&head, &format!("alice@localhost/r{n}"));
        if n == 0 {
            // The first session (the login of `connect`) lives until the
            // client's initial presence, so that `connect` succeeds.
            conn.until(&["<presence"]);
        }
        conn.say(
            "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             </stream:error></stream:stream>",
        );
    })
    .expect("script server");
    let config = Config::new("alice@localhost".parse().expect("jid"), "secret")
        .danger_plaintext_loopback_only(script.addr())
        .with_connect_timeout(PATIENCE);
    let client = Client::connect(config).await.expect("first login");
    let first = std::time::Instant::now();
    tokio::time::timeout(PATIENCE, async {
        while script.connections() < 7 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the client keeps reconnecting");
    let took = first.elapsed();
    // Connections 2 to 7 follow waits of at least 50 + 100 + 200 + 400 +
    // 800 ms (the first reconnection is at once): a lower bound, which a
    // slow machine only exceeds.
    assert!(
        took >= Duration::from_millis(1550),
        "six reconnections in {took:?}: no growing delay"
    );
    client.shutdown().await;
}
