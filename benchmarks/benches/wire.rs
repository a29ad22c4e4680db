//! Workload 7 of the benchmark (see docs/benchmarks.md): what the wire
//! format costs alone, without any network, measured with divan.
//!
//! `cargo bench -p benchmarks --bench wire`
//!
//! * `frame`: `wire::encode` → `wire::decode_message`, the library's own
//!   work per payload on the client's typed path (targets: under 5 µs for
//!   32 B, under 200 µs for 128000 B).
//! * `xml`: the same with the element serialised to text and parsed back
//!   by minidom.
//! * `stream`: the client's whole stanza path without the socket: the
//!   sender's engine, tokio-xmpp's XML stream writer and reader over an
//!   in-memory pipe with the client's guard, the receiver's engine and
//!   inbox ([`StreamPath`]).
//!
//! The inputs are the benchmark's own [`Fixture`], which the benchmark
//! binary (`cargo run --release -p benchmarks`) times with its own timer
//! and counts instructions of under callgrind.

use benchmarks::wire_cost::{Fixture, StreamPath, SIZES};
use divan::Bencher;
use webxdc_realtime_xmpp::wire;

fn main() {
    divan::main();
}

#[divan::bench(args = SIZES)]
fn frame(bencher: Bencher, size: usize) {
    round_trips(bencher, size, Fixture::frame_round_trip);
}

#[divan::bench(args = SIZES)]
fn xml(bencher: Bencher, size: usize) {
    round_trips(bencher, size, Fixture::xml_round_trip);
}

#[divan::bench(args = SIZES)]
fn stream(bencher: Bencher, size: usize) {
    let mut path = StreamPath::new(size);
    bencher
        .counter(divan::counter::BytesCount::new(size))
        .bench_local(|| path.round_trip());
}

/// One round trip of `size` payload bytes per iteration, counted as bytes.
fn round_trips(bencher: Bencher, size: usize, round_trip: fn(&Fixture) -> usize) {
    let f = Fixture::new(size);
    bencher
        .counter(divan::counter::BytesCount::new(size))
        .bench(|| round_trip(&f));
}

#[divan::bench(args = SIZES)]
fn encode_only(bencher: Bencher, size: usize) {
    let f = Fixture::new(size);
    bencher.bench(|| f.element());
}

#[divan::bench(args = SIZES)]
fn decode_only(bencher: Bencher, size: usize) {
    let el = Fixture::new(size).element();
    bencher.bench(|| {
        wire::decode(&el)
            .expect("valid")
            .expect("a frame")
            .data
            .len()
    });
}
