//! Workload 7 of the benchmark (see docs/benchmarks.md): what the wire
//! format costs alone, without any network.
//!
//! `cargo bench --bench wire`
//!
//! * `frame`: `wire::encode` → `wire::decode_message`, the library's own
//!   work per payload on the client's typed path (targets: under 5 µs for
//!   32 B, under 200 µs for 128000 B).
//! * `xml`: the same with the element serialised to text and parsed back,
//!   the work minidom adds on each side of a real socket.
//!
//! The benchmark binary (`cargo run --release -p benchmarks`) measures the
//! same paths with its own timer and counts instructions under callgrind.

use divan::Bencher;
use webxdc_realtime_xmpp::jid::{BareJid, Jid};
use webxdc_realtime_xmpp::minidom::Element;
use webxdc_realtime_xmpp::wire::{self, ChatKind};

/// Same lengths as the benchmark package's fixture: a UUID-like thread and
/// stanza id.
const THREAD: &str = "f2b9c8e4-3c1d-4d6e-9a55-0b7e1c2d3f40";
const ID: &str = "6c8e2f0a-1b3d-4e5f-8a9b-0c1d2e3f4a5b";

const SIZES: [usize; 2] = [32, 128_000];

struct Fixture {
    room: BareJid,
    from: Jid,
    data: Vec<u8>,
}

impl Fixture {
    fn new(size: usize) -> Fixture {
        Fixture {
            room: "bench@conference.localhost".parse().expect("static JID"),
            from: "bench@conference.localhost/alice"
                .parse()
                .expect("static JID"),
            // Not all one byte value: compressible filler would flatter.
            data: (0..size).map(|i| (i * 131 % 251) as u8).collect(),
        }
    }

    fn element(&self) -> Element {
        let mut msg = wire::encode(&self.room, ChatKind::Group, THREAD, &self.data, ID)
            .expect("payload within the limit");
        // What the room stamps on the reflected copy.
        msg.from = Some(self.from.clone());
        Element::from(msg)
    }
}

fn main() {
    divan::main();
}

#[divan::bench(args = SIZES)]
fn frame(bencher: Bencher, size: usize) {
    let f = Fixture::new(size);
    bencher
        .counter(divan::counter::BytesCount::new(size))
        .bench(|| {
            let mut msg = wire::encode(&f.room, ChatKind::Group, THREAD, &f.data, ID)
                .expect("payload within the limit");
            msg.from = Some(f.from.clone());
            let frame = wire::decode_message(&msg).expect("valid").expect("a frame");
            frame.data.len()
        });
}

#[divan::bench(args = SIZES)]
fn xml(bencher: Bencher, size: usize) {
    let f = Fixture::new(size);
    bencher
        .counter(divan::counter::BytesCount::new(size))
        .bench(|| {
            let text = String::from(&f.element());
            let el: Element = text.parse().expect("own output parses");
            let frame = wire::decode(&el).expect("valid").expect("a frame");
            frame.data.len()
        });
}

#[divan::bench(args = SIZES)]
fn encode_only(bencher: Bencher, size: usize) {
    let f = Fixture::new(size);
    bencher.bench(|| f.element());
}

#[divan::bench(args = SIZES)]
fn decode_only(bencher: Bencher, size: usize) {
    let f = Fixture::new(size);
    let el = f.element();
    bencher.bench(|| {
        wire::decode(&el)
            .expect("valid")
            .expect("a frame")
            .data
            .len()
    });
}
