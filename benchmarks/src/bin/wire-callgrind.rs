//! Runs the library's encode + decode of one frame N times, for
//! `valgrind --tool=callgrind` (workload 7). Nothing else happens in the
//! process, so two runs with different N give instructions per operation.
//!
//! Usage: wire-callgrind SIZE N

fn main() {
    let mut args = std::env::args().skip(1);
    let size: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .expect("usage: wire-callgrind SIZE N");
    let n: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .expect("usage: wire-callgrind SIZE N");
    let fixture = benchmarks::wire_cost::Fixture::new(size);
    let mut total = 0usize;
    for _ in 0..n {
        total = total.wrapping_add(std::hint::black_box(&fixture).frame_round_trip());
    }
    std::hint::black_box(total);
}
