//! Workload 7: what the library's wire format costs alone, without any
//! network: `wire::encode` + `wire::decode` of one frame.
//!
//! Two paths are measured:
//! * `frame`: `wire::encode` → `wire::decode_message`, the typed path the
//!   client runs per payload (tokio-xmpp serialises the typed message and
//!   hands received ones over typed). The target applies here.
//! * `xml`: the same plus serialising the element to text and parsing it
//!   back with minidom (a stand-in: the client does not use minidom's
//!   text parser).
//! * `stream`: the whole stanza path of a real connection without the
//!   socket ([`StreamPath`]): the sender's `Engine::send`, its typed
//!   stanza written by tokio-xmpp's XML stream writer, the bytes through
//!   the client's guard and read back by tokio-xmpp's stream reader into a
//!   typed stanza, the receiver's `Engine::handle_stanza` and the payload
//!   taken from the channel's inbox.
//!
//! [`Fixture`] is the one set of inputs: the benchmark's own timer
//! ([`run`]), the callgrind helper binary (`src/bin/wire-callgrind.rs`)
//! and the divan bench (`benches/wire.rs`) all measure it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::io::{BufStream, DuplexStream};
use tokio_xmpp::connect::AsyncReadAndWrite;
use tokio_xmpp::xmlstream::{
    accept_stream, initiate_stream, FallibleStreamElement, StreamHeader, Timeouts, XmlStream,
    XmppStreamElement,
};
use webxdc_realtime_xmpp::client::Guard;
use webxdc_realtime_xmpp::engine::{ChannelId, Chat, Engine, EngineConfig, Handled};
use webxdc_realtime_xmpp::jid::{BareJid, FullJid, Jid};
use webxdc_realtime_xmpp::minidom::Element;
use webxdc_realtime_xmpp::wire::{self, ChatKind};
use webxdc_realtime_xmpp::{Delivery, Inbox};
use xmpp_parsers::stanza::Stanza;

use crate::params::Params;
use crate::stats::Summary;
use crate::LARGE;

/// The payload sizes measured: a small one and the largest allowed.
pub const SIZES: [usize; 2] = [32, LARGE];

/// The thread (webxdc instance id) used in every measured frame: as long as
/// Delta Chat's and Cheogram's message ids typically are.
pub const THREAD: &str = "f2b9c8e4-3c1d-4d6e-9a55-0b7e1c2d3f40";
/// A stanza id of the length the library generates (a UUID).
pub const ID: &str = "6c8e2f0a-1b3d-4e5f-8a9b-0c1d2e3f4a5b";

/// The fixed inputs of one round trip.
pub struct Fixture {
    pub room: BareJid,
    pub from: Jid,
    pub data: Vec<u8>,
}

impl Fixture {
    pub fn new(size: usize) -> Fixture {
        Fixture {
            room: "bench@conference.localhost".parse().expect("static JID"),
            from: "bench@conference.localhost/alice"
                .parse()
                .expect("static JID"),
            data: crate::workloads::payload(size),
        }
    }

    /// The stanza the sender writes, as minidom serialises it.
    pub fn stanza(&self) -> String {
        let msg = wire::encode(&self.room, ChatKind::Group, THREAD, &self.data, ID)
            .expect("payload within the limit");
        String::from(&Element::from(msg))
    }

    /// The typed message as the receiver gets it: encoded, then stamped
    /// with the sender's occupant JID as the room reflects it.
    fn reflected(&self) -> xmpp_parsers::message::Message {
        let mut msg = wire::encode(&self.room, ChatKind::Group, THREAD, &self.data, ID)
            .expect("payload within the limit");
        msg.from = Some(self.from.clone());
        msg
    }

    /// encode + stamp, as an element (what the `xml` path serialises).
    pub fn element(&self) -> Element {
        Element::from(self.reflected())
    }

    /// encode → decode of the typed message. Returns the decoded length so
    /// the optimiser cannot drop the work.
    pub fn frame_round_trip(&self) -> usize {
        let msg = self.reflected();
        let frame = wire::decode_message(&msg)
            .expect("valid frame")
            .expect("a realtime frame");
        frame.data.len()
    }

    /// The same with XML text in between (serialise and parse).
    pub fn xml_round_trip(&self) -> usize {
        let text = String::from(&self.element());
        let el: Element = text.parse().expect("own output parses");
        let frame = wire::decode(&el)
            .expect("valid frame")
            .expect("a realtime frame");
        frame.data.len()
    }
}

/// The paths measured, in the order the table lists them.
pub const PATHS: [&str; 3] = ["frame", "xml", "stream"];

/// One end of the in-memory connection: what the client's connector builds
/// over its socket (the guard, a buffer), boxed as `StanzaStream` boxes it.
type End = XmlStream<Box<dyn AsyncReadAndWrite + Send + 'static>, FallibleStreamElement>;

/// The `stream` path: two engines in one room, joined to one instance, and
/// the two ends of a tokio-xmpp XML stream over an in-memory pipe, each
/// end behind the client's [`Guard`]. One [`round_trip`](Self::round_trip)
/// carries one payload from the sender's `send` to the receiver's inbox.
pub struct StreamPath {
    rt: tokio::runtime::Runtime,
    /// The end the sender's stanzas are written to.
    tx: End,
    /// The end the receiver reads (the client's side of a connection).
    rx: End,
    sender: Engine,
    channel: ChannelId,
    receiver: Engine,
    inbox: Inbox,
    /// What the room stamps on the reflected copy.
    occupant: Jid,
    addressee: Jid,
    data: Vec<u8>,
}

impl StreamPath {
    pub fn new(size: usize) -> StreamPath {
        let fixture = Fixture::new(size);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        // Large enough for the largest stanza, so that a write completes
        // before the read starts (one task does both).
        let (a, b) = tokio::io::duplex(1 << 20);
        let guarded = |io: DuplexStream| BufStream::new(Guard::standalone(io));
        let (tx, rx) = rt.block_on(async {
            let header = || StreamHeader {
                to: Some("localhost".into()),
                from: None,
                id: None,
            };
            let client = async {
                initiate_stream(guarded(a), "jabber:client", header(), Timeouts::default())
                    .await
                    .expect("stream header")
                    .recv_features::<FallibleStreamElement>()
                    .await
                    .expect("stream features")
                    .1
            };
            let server = async {
                accept_stream(guarded(b), "jabber:client", Timeouts::default())
                    .await
                    .expect("stream header")
                    .send_header(header())
                    .await
                    .expect("stream header")
                    .send_features::<FallibleStreamElement>(&Default::default())
                    .await
                    .expect("stream features")
            };
            let (rx, tx) = tokio::join!(client, server);
            (tx.box_stream(), rx.box_stream())
        });
        let join = |own: &str, nick: &str| {
            let mut e = Engine::new(EngineConfig::default());
            e.set_online(own.parse::<FullJid>().expect("static JID"), false);
            e.adopt_room(fixture.room.clone(), nick);
            let (ch, inbox) = e
                .join(Chat::Group(fixture.room.clone()), THREAD)
                .expect("joins");
            (e, ch, inbox)
        };
        let (sender, channel, _) = join("alice@localhost/phone", "alice");
        let (receiver, _, inbox) = join("bob@localhost/phone", "bob");
        StreamPath {
            rt,
            tx,
            rx,
            sender,
            channel,
            receiver,
            inbox,
            occupant: fixture.from.clone(),
            addressee: "bob@localhost/phone".parse().expect("static JID"),
            data: fixture.data,
        }
    }

    /// One payload from the sender's `send` to the receiver's inbox.
    /// Returns the delivered length.
    pub fn round_trip(&mut self) -> usize {
        self.sender.send(self.channel, &self.data).expect("sends");
        let Some(Stanza::Message(mut m)) = self.sender.poll_transmit_stanza() else {
            panic!("the sender queued no message");
        };
        // What the room does to the copy it delivers.
        m.from = Some(self.occupant.clone());
        m.to = Some(self.addressee.clone());
        let stanza = Stanza::Message(m);
        let (tx, rx) = (&mut self.tx, &mut self.rx);
        let read = self.rt.block_on(async {
            tx.send(&stanza).await.expect("written");
            drop(stanza);
            rx.next().await
        });
        let Some(Ok(FallibleStreamElement::Ok(XmppStreamElement::Stanza(s)))) = read else {
            panic!("the reader got no stanza: {read:?}");
        };
        assert!(matches!(
            self.receiver.handle_stanza(s),
            Handled::Delivered(_)
        ));
        match self.inbox.try_recv() {
            Ok(Delivery::Payload(p)) => p.data.len(),
            other => panic!("no payload in the inbox: {other:?}"),
        }
    }
}

/// Wall-clock cost of one operation (µs): the median and spread of
/// `batches` batches, each long enough to dwarf the clock's resolution.
#[derive(Debug, Clone, Serialize)]
pub struct OpCost {
    pub size: usize,
    pub path: String,
    pub us: Summary,
    /// Instructions per operation under callgrind, when measured.
    pub instructions: Option<u64>,
}

pub fn time_op(size: usize, path: &str, budget: Duration, mut f: impl FnMut() -> usize) -> OpCost {
    // Calibrate a batch to about 1/50 of the budget.
    let mut per_batch = 1usize;
    loop {
        let t = Instant::now();
        for _ in 0..per_batch {
            std::hint::black_box(f());
        }
        if t.elapsed() >= budget / 50 || per_batch >= 1 << 24 {
            break;
        }
        per_batch *= 2;
    }
    let mut samples = Vec::new();
    let end = Instant::now() + budget;
    while Instant::now() < end || samples.len() < 5 {
        let t = Instant::now();
        for _ in 0..per_batch {
            std::hint::black_box(f());
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6 / per_batch as f64);
    }
    OpCost {
        size,
        path: path.to_owned(),
        us: Summary::of(&samples),
        instructions: None,
    }
}

/// Instructions per operation of `path` under callgrind: the difference
/// between runs of `n2` and `n1` iterations divided by `n2 - n1`, so
/// start-up costs cancel out. `None` with the reason when valgrind or the
/// helper binary is missing.
pub fn callgrind(
    helper: &std::path::Path,
    path: &str,
    size: usize,
    n1: u64,
    n2: u64,
) -> Result<u64, String> {
    let run = |n: u64| -> Result<u64, String> {
        let out = std::process::Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(helper)
            .args([size.to_string(), n.to_string(), path.to_owned()])
            .output()
            .map_err(|e| format!("cannot run valgrind: {e}"))?;
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "valgrind failed: {}",
                err.lines().last().unwrap_or("")
            ));
        }
        // "==123== Collected : 4567890"
        err.lines()
            .find_map(|l| l.split("Collected :").nth(1))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| "no 'Collected' line in valgrind's output".to_owned())
    };
    let a = run(n1)?;
    let b = run(n2)?;
    Ok(b.saturating_sub(a) / (n2 - n1))
}

/// Workload 7: wall-clock per op here, instructions under callgrind.
pub async fn run(p: &Params) -> (Vec<OpCost>, String) {
    let budget = p.wire_budget;
    let runs = p.callgrind;
    let quick = p.quick;
    let r = tokio::task::spawn_blocking(move || {
        let mut costs = Vec::new();
        for size in SIZES {
            let f = Fixture::new(size);
            costs.push(time_op(size, "frame", budget, || f.frame_round_trip()));
            costs.push(time_op(size, "xml", budget, || f.xml_round_trip()));
            let mut s = StreamPath::new(size);
            costs.push(time_op(size, "stream", budget, || s.round_trip()));
        }
        let note = match callgrind_helper() {
            Err(e) => format!("callgrind: not measured ({e})"),
            Ok(helper) => {
                let mut notes = Vec::new();
                'runs: for (size, n1, n2) in runs {
                    for path in PATHS {
                        match callgrind(&helper, path, size, n1, n2) {
                            Ok(i) => {
                                if let Some(c) =
                                    costs.iter_mut().find(|c| c.size == size && c.path == path)
                                {
                                    c.instructions = Some(i);
                                }
                            }
                            Err(e) => {
                                let what = if quick { "skipped" } else { "failed" };
                                notes.push(format!("callgrind {what}: {e}"));
                                break 'runs;
                            }
                        }
                    }
                }
                if notes.is_empty() {
                    format!(
                        "Instructions: `valgrind --tool=callgrind {} SIZE N PATH`, (Ir(N2) − Ir(N1)) / (N2 − N1).",
                        helper.display()
                    )
                } else {
                    notes.join("; ")
                }
            }
        };
        (costs, note)
    })
    .await;
    r.unwrap_or_else(|e| (Vec::new(), format!("wire workload panicked: {e}")))
}

/// The `wire-callgrind` binary beside ours; built on demand when `cargo
/// run` built only the main binary.
fn callgrind_helper() -> Result<PathBuf, String> {
    if std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("valgrind is not installed".into());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let helper = exe.with_file_name("wire-callgrind");
    if helper.exists() {
        return Ok(helper);
    }
    let cargo = std::env::var("CARGO").map_err(|_| {
        format!(
            "{} is missing (build it with `cargo build --release -p benchmarks`)",
            helper.display()
        )
    })?;
    let release = exe
        .parent()
        .and_then(|d| d.file_name())
        .is_some_and(|n| n == "release");
    let mut cmd = std::process::Command::new(cargo);
    cmd.args([
        "build",
        "--offline",
        "-p",
        "benchmarks",
        "--bin",
        "wire-callgrind",
    ]);
    if release {
        cmd.arg("--release");
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() || !helper.exists() {
        return Err(format!(
            "building wire-callgrind failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    Ok(helper)
}
