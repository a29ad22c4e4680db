//! Runs one path of workload 7 N times, for `valgrind --tool=callgrind`.
//! Nothing else happens in the process, so two runs with different N give
//! instructions per operation.
//!
//! Usage: wire-callgrind SIZE N [PATH]
//!
//! PATH is `frame` (the default), `xml` or `stream` (see
//! `benchmarks/src/wire_cost.rs`). The `stream` path sets its connection
//! up before the loop, so the set-up cancels out of the difference too.

use benchmarks::wire_cost::{Fixture, StreamPath, PATHS};

const USAGE: &str = "usage: wire-callgrind SIZE N [frame|xml|stream]";

fn main() {
    let mut args = std::env::args().skip(1);
    let size: usize = args.next().and_then(|s| s.parse().ok()).expect(USAGE);
    let n: u64 = args.next().and_then(|s| s.parse().ok()).expect(USAGE);
    let path = args.next().unwrap_or_else(|| "frame".to_owned());
    assert!(PATHS.contains(&path.as_str()), "{USAGE}");
    let fixture = Fixture::new(size);
    let mut stream = (path == "stream").then(|| StreamPath::new(size));
    let mut total = 0usize;
    for _ in 0..n {
        let len = match (&mut stream, path.as_str()) {
            (Some(s), _) => s.round_trip(),
            (None, "xml") => std::hint::black_box(&fixture).xml_round_trip(),
            (None, _) => std::hint::black_box(&fixture).frame_round_trip(),
        };
        total = total.wrapping_add(std::hint::black_box(len));
    }
    std::hint::black_box(total);
}
