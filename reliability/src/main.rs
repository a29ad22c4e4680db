//! `cargo run --release -p reliability [-- --quick] [--only PART,...] [--no-docs]`
//!
//! Runs the campaign's parts in order, prints the table, and (unless
//! `--quick` or `--no-docs`) writes `docs/reliability.md`. Exits with 1 if
//! any case did not hold.

use std::time::Instant;

use reliability::{report, Row, Scale};

const PARTS: [&str; 5] = ["fuzz", "load", "flood", "faults", "api"];

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--help") || has("-h") {
        println!(
            "usage: reliability [--quick] [--only {}] [--no-docs]",
            PARTS.join(",")
        );
        return;
    }
    let scale = if has("--quick") {
        Scale::Quick
    } else {
        Scale::Full
    };
    let only: Vec<String> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_owned).collect())
        .unwrap_or_else(|| PARTS.iter().map(|s| s.to_string()).collect());
    if let Some(bad) = only.iter().find(|p| !PARTS.contains(&p.as_str())) {
        eprintln!("unknown part {bad:?}; the parts are {}", PARTS.join(", "));
        std::process::exit(2);
    }
    reliability::setup::init_tracing();
    let started = Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    for part in PARTS.iter().filter(|p| only.iter().any(|o| o == *p)) {
        let t = Instant::now();
        eprintln!("reliability: {part} …");
        let got = match *part {
            "fuzz" => reliability::fuzz::run(scale).await,
            "load" => reliability::load::run(scale).await,
            "flood" => reliability::flood::run(scale).await,
            "faults" => reliability::faults::run(scale).await,
            _ => reliability::api::run(scale).await,
        };
        eprintln!(
            "reliability: {part}: {} rows in {:.0?}",
            got.len(),
            t.elapsed()
        );
        rows.extend(got);
    }
    let table = report::table(&rows);
    println!("{table}");
    let all = only.len() == PARTS.len();
    if scale == Scale::Full && all && !has("--no-docs") {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reliability.md");
        let current = std::fs::read_to_string(path).unwrap_or_default();
        let doc = report::document(&current, &table, started.elapsed());
        std::fs::write(path, doc).expect("write docs/reliability.md");
        eprintln!("reliability: wrote docs/reliability.md");
    }
    if rows.iter().any(|r| !r.held) {
        std::process::exit(1);
    }
}
