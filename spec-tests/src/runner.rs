//! Runs every case on several backends and prints one result table.
//!
//! ```ignore
//! use spec_tests::runner::Backend;
//!
//! let backends = vec![
//!     Backend::new("mine", my_backend::MyHarness::new),
//!     Backend::new("mine-over-tls", my_backend::MyHarness::with_tls),
//! ];
//! std::process::exit(spec_tests::runner::main(backends));
//! ```
//!
//! (`examples/broadcast.rs` is a complete program that does this:
//! `cargo run -p spec-tests --example broadcast`.)
//!
//! The factory is a plain, synchronous, infallible `Fn() -> H`: it is
//! called once per case, inside the runtime (so it may spawn tasks), and a
//! harness that needs fallible or asynchronous set-up (starting a server,
//! binding an endpoint) does it on its first async call and reports
//! failure there as a [`HarnessError`](crate::harness::HarnessError), which
//! fails the case with the reason.
//!
//! Command line of [`main`]:
//!
//! * `--backend NAME` (repeatable): run only these backends (default: all);
//! * `--case SUBSTRING` (repeatable): run only cases whose name contains it;
//! * `--expectations DIR`: where `NAME.txt` files list the cases expected
//!   to fail on backend `NAME`, one `case_name: reason` per line (`#`
//!   starts a comment; a missing file means every case is expected to
//!   pass). Default: this crate's `expectations/` directory;
//! * `--jobs N`: cases run at once per backend (default 4);
//! * `--markdown`: print the table as Markdown.
//!
//! Output: the table (case × backend: `pass`, `FAIL [n]`, `skipped [n]`,
//! the notes `[n]` below it give the reasons), then one line per backend
//! `conformance backend=NAME passed=N failed=M skipped=K`, then every
//! difference from the expectations. [`main`] returns 0 when reality
//! matches the expectations, 1 when it does not (an unexpected failure, or
//! an expected failure that passed), 2 on a usage error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::cases::{self, CaseFuture};
use crate::harness::Harness;
use crate::Outcome;

/// The longest a single case may take before it counts as failed (a hang
/// guard well above the slowest case on a loaded machine).
pub const CASE_TIMEOUT: Duration = Duration::from_secs(240);

/// Cases run at once per backend, unless `--jobs` says otherwise: enough to
/// hide server start-up latency, few enough for a 2-core machine.
pub const DEFAULT_JOBS: usize = 4;

type Runner = Arc<dyn Fn() -> CaseFuture + Send + Sync>;

/// A named backend: how to make a fresh harness for each case.
pub struct Backend {
    name: String,
    cases: Vec<(&'static str, Runner)>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").field("name", &self.name).finish()
    }
}

impl Backend {
    /// A backend called `name` (the column header and the expectations file
    /// `NAME.txt`), whose harnesses `factory` makes, one per case.
    pub fn new<H, F>(name: &str, factory: F) -> Backend
    where
        H: Harness + 'static,
        F: Fn() -> H + Send + Sync + 'static,
    {
        let factory = Arc::new(factory);
        let cases = cases::all::<H>()
            .into_iter()
            .map(|case| {
                let factory = factory.clone();
                let run: Runner = Arc::new(move || (case.run)(factory()));
                (case.name, run)
            })
            .collect();
        Backend {
            name: name.to_owned(),
            cases,
        }
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// What to run and how to report it (the parsed command line).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Backends to run (empty: all).
    pub backends: Vec<String>,
    /// Substrings; a case runs if its name contains any (empty: all).
    pub cases: Vec<String>,
    /// Where the `NAME.txt` expectation files are.
    pub expectations: PathBuf,
    /// Cases run at once per backend.
    pub jobs: usize,
    /// Print the table as Markdown.
    pub markdown: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            backends: Vec::new(),
            cases: Vec::new(),
            expectations: default_expectations(),
            jobs: DEFAULT_JOBS,
            markdown: false,
        }
    }
}

/// This crate's `expectations/` directory.
pub fn default_expectations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("expectations")
}

impl RunOptions {
    /// Parses command-line arguments (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<RunOptions, String> {
        let mut o = RunOptions::default();
        let mut args = args.into_iter();
        while let Some(a) = args.next() {
            let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
            match a.as_str() {
                "--backend" => o.backends.push(value("--backend")?),
                "--case" => o.cases.push(value("--case")?),
                "--expectations" => o.expectations = PathBuf::from(value("--expectations")?),
                "--jobs" => {
                    let v = value("--jobs")?;
                    o.jobs = match v.parse() {
                        Ok(n) if n > 0 => n,
                        _ => return Err(format!("--jobs needs a positive number, not {v:?}")),
                    };
                }
                "--markdown" => o.markdown = true,
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        Ok(o)
    }
}

const USAGE: &str = "usage: conformance [--backend NAME]... [--case SUBSTRING]... \
[--expectations DIR] [--jobs N] [--markdown]";

/// The result of one case on one backend.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case.
    pub case: &'static str,
    /// What happened.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

/// Every result of one backend.
#[derive(Debug, Clone)]
pub struct BackendReport {
    /// The backend's name.
    pub backend: String,
    /// One result per case run, in the suite's order.
    pub results: Vec<CaseResult>,
}

impl BackendReport {
    /// (passed, failed, skipped).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for r in &self.results {
            match r.outcome {
                Outcome::Pass => c.0 += 1,
                Outcome::Fail(_) => c.1 += 1,
                Outcome::Skipped(_) => c.2 += 1,
            }
        }
        c
    }
}

/// Runs one case future to its end on the current runtime, turning a panic
/// or a hang into a failure.
pub async fn run_guarded(fut: CaseFuture) -> Outcome {
    match tokio::spawn(tokio::time::timeout(CASE_TIMEOUT, fut)).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Outcome::Fail(format!("did not finish within {CASE_TIMEOUT:?}")),
        Err(e) if e.is_panic() => {
            let p = e.into_panic();
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "(no message)".to_owned());
            Outcome::Fail(format!("panicked: {msg}"))
        }
        Err(e) => Outcome::Fail(format!("case task failed: {e}")),
    }
}

/// Runs the selected cases of every selected backend (backends one after
/// the other, up to `jobs` cases of a backend at once) and returns the
/// reports. Must be called inside a multi-thread tokio runtime.
pub async fn run(backends: &[Backend], opts: &RunOptions) -> Vec<BackendReport> {
    let mut reports = Vec::new();
    for b in backends {
        if !opts.backends.is_empty() && !opts.backends.iter().any(|n| n == &b.name) {
            continue;
        }
        let selected: Vec<(&'static str, Runner)> = b
            .cases
            .iter()
            .filter(|(name, _)| {
                opts.cases.is_empty() || opts.cases.iter().any(|s| name.contains(s.as_str()))
            })
            .cloned()
            .collect();
        let mut results: Vec<(usize, CaseResult)> =
            futures::stream::iter(selected.into_iter().enumerate())
                .map(|(i, (case, run))| async move {
                    let start = Instant::now();
                    let outcome = run_guarded(run()).await;
                    let elapsed = start.elapsed();
                    eprintln!(
                        "{:>8.1}s  {}  {case}: {}",
                        elapsed.as_secs_f64(),
                        b.name,
                        outcome.label()
                    );
                    (
                        i,
                        CaseResult {
                            case,
                            outcome,
                            elapsed,
                        },
                    )
                })
                .buffer_unordered(opts.jobs.max(1))
                .collect()
                .await;
        results.sort_by_key(|(i, _)| *i);
        reports.push(BackendReport {
            backend: b.name.clone(),
            results: results.into_iter().map(|(_, r)| r).collect(),
        });
    }
    reports
}

/// The result table (case × backend) with numbered notes for the reasons.
pub fn table(reports: &[BackendReport], markdown: bool) -> String {
    let mut cases: Vec<&'static str> = Vec::new();
    for r in reports {
        for c in &r.results {
            if !cases.contains(&c.case) {
                cases.push(c.case);
            }
        }
    }
    let mut notes: Vec<String> = Vec::new();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["case".to_owned()];
    header.extend(reports.iter().map(|r| r.backend.clone()));
    rows.push(header);
    for case in &cases {
        let mut row = vec![(*case).to_owned()];
        for r in reports {
            let cell = match r.results.iter().find(|c| c.case == *case) {
                None => "-".to_owned(),
                Some(c) => match &c.outcome {
                    Outcome::Pass => "pass".to_owned(),
                    Outcome::Fail(why) | Outcome::Skipped(why) => {
                        notes.push(format!("{} / {case}: {why}", r.backend));
                        format!("{} [{}]", c.outcome.label(), notes.len())
                    }
                },
            };
            row.push(cell);
        }
        rows.push(row);
    }
    let mut out = String::new();
    if markdown {
        for (i, row) in rows.iter().enumerate() {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
            if i == 0 {
                out.push_str(&format!("|{}\n", "---|".repeat(row.len())));
            }
        }
    } else {
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|col| {
                rows.iter()
                    .map(|r| r[col].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        for (i, n) in notes.iter().enumerate() {
            out.push_str(&format!("[{}] {n}\n", i + 1));
        }
    }
    out
}

/// The cases expected to fail on `backend`, with their reasons, from
/// `DIR/BACKEND.txt` (empty if the file does not exist).
pub fn load_expectations(dir: &Path, backend: &str) -> Result<BTreeMap<String, String>, String> {
    let path = dir.join(format!("{backend}.txt"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let mut map = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (case, reason) = line.split_once(':').unwrap_or((line, ""));
        let case = case.trim();
        if !cases::NAMES.contains(&case) {
            return Err(format!(
                "{}:{}: {case:?} is not a case of the suite",
                path.display(),
                n + 1
            ));
        }
        map.insert(case.to_owned(), reason.trim().to_owned());
    }
    Ok(map)
}

/// Differences between the reports and the expectations in `dir`, one
/// line each (empty: reality matches).
pub fn compare(reports: &[BackendReport], dir: &Path) -> Result<Vec<String>, String> {
    let mut diffs = Vec::new();
    for r in reports {
        let expected = load_expectations(dir, &r.backend)?;
        for c in &r.results {
            match (&c.outcome, expected.get(c.case)) {
                (Outcome::Fail(why), None) => diffs.push(format!(
                    "UNEXPECTED FAILURE {} / {}: {why}",
                    r.backend, c.case
                )),
                (Outcome::Pass, Some(reason)) => diffs.push(format!(
                    "UNEXPECTED PASS {} / {} (listed as expected to fail: {reason}); \
                     remove it from {}.txt",
                    r.backend, c.case, r.backend
                )),
                _ => {}
            }
        }
    }
    Ok(diffs)
}

/// Runs the suite with the options on a new multi-thread runtime, prints
/// the report and returns the process exit code (see the module docs).
pub fn run_and_report(backends: Vec<Backend>, opts: &RunOptions) -> i32 {
    for wanted in &opts.backends {
        if !backends.iter().any(|b| &b.name == wanted) {
            let known: Vec<&str> = backends.iter().map(|b| b.name.as_str()).collect();
            eprintln!("unknown backend {wanted:?}; known: {}", known.join(", "));
            return 2;
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a tokio runtime: {e}");
            return 2;
        }
    };
    let reports = rt.block_on(run(&backends, opts));
    // Stops whatever the harnesses left behind (for example servers being
    // stopped on blocking threads) before printing.
    drop(rt);
    print!("{}", table(&reports, opts.markdown));
    println!();
    for r in &reports {
        let (p, f, s) = r.counts();
        println!(
            "conformance backend={} passed={p} failed={f} skipped={s}",
            r.backend
        );
    }
    match compare(&reports, &opts.expectations) {
        Err(e) => {
            eprintln!("expectations: {e}");
            2
        }
        Ok(diffs) if diffs.is_empty() => {
            println!("expectations met ({})", opts.expectations.display());
            0
        }
        Ok(diffs) => {
            for d in &diffs {
                println!("{d}");
            }
            println!(
                "{} difference(s) from the expectations in {}",
                diffs.len(),
                opts.expectations.display()
            );
            1
        }
    }
}

/// The runner's entry point: parses `std::env::args`, runs, prints, and
/// returns the exit code for [`std::process::exit`].
pub fn main(backends: Vec<Backend>) -> i32 {
    match RunOptions::parse(std::env::args().skip(1)) {
        Ok(opts) => run_and_report(backends, &opts),
        Err(e) => {
            eprintln!("{e}");
            2
        }
    }
}

/// What the [`conformance_tests!`](crate::conformance_tests) macro runs for
/// one case: builds the harness with `make` on a new multi-thread runtime,
/// runs the case named `case`, panics with the reason on failure and
/// prints a note when it is skipped. A backend whose expectations file
/// (`spec-tests/expectations/NAME.txt`) lists the case must fail it: the
/// test then passes with a note, and panics if the case unexpectedly passes.
pub fn run_test<H, F>(case: &str, make: F)
where
    H: Harness + 'static,
    F: FnOnce() -> H,
{
    let Some(c) = cases::all::<H>().into_iter().find(|c| c.name == case) else {
        panic!("{case} is not a case of the suite");
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the case");
    let harness = {
        let _inside = rt.enter();
        make()
    };
    let name = harness.name();
    // A backend that is known to break a rule says so in its expectations
    // file; the test then checks that reality still matches (it must fail
    // that case, and pass every other).
    let expected = load_expectations(&default_expectations(), &name)
        .unwrap_or_else(|e| panic!("expectations for {name}: {e}"));
    let outcome = rt.block_on(run_guarded((c.run)(harness)));
    drop(rt);
    match (outcome, expected.get(case)) {
        (Outcome::Pass, None) => {}
        (Outcome::Skipped(why), _) => println!("note: {case} skipped on {name}: {why}"),
        (Outcome::Fail(why), None) => panic!("{case} failed on {name}: {why}"),
        (Outcome::Fail(why), Some(reason)) => {
            println!("note: {case} fails on {name} as expected ({reason}): {why}")
        }
        (Outcome::Pass, Some(reason)) => panic!(
            "{case} passed on {name}, but its expectations file says it fails ({reason}): \
             update spec-tests/expectations/{name}.txt"
        ),
    }
}

/// Asserts that a list of case names is exactly the suite's (used by the
/// macro to prove it expands every case).
pub fn assert_all_cases(names: &[&str]) {
    let mut missing: Vec<&str> = cases::NAMES
        .iter()
        .copied()
        .filter(|n| !names.contains(n))
        .collect();
    missing.extend(names.iter().copied().filter(|n| !cases::NAMES.contains(n)));
    assert!(
        missing.is_empty(),
        "the conformance_tests! macro and the case list differ: {missing:?}"
    );
}
