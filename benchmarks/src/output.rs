//! Where a run's results go: `benchmarks/results/{latest,quick}.{json,md,svg}`
//! always, and for a full run of everything `docs/benchmarks.md` (between
//! its result markers) and `docs/benchmarks.svg`.

use std::path::Path;

use crate::report::Report;

/// Writes the report, its table and its chart under the name of the mode
/// (`quick` or `latest`). `docs`: also update the docs (a full run of
/// every section, without `--no-docs`).
pub fn write_results(report: &Report, table: &str, quick: bool, docs: bool) {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let results = manifest.join("results");
    let stem = if quick { "quick" } else { "latest" };
    std::fs::create_dir_all(&results).expect("cannot create benchmarks/results");
    let json = serde_json::to_string_pretty(report).expect("the report serialises");
    write(&results.join(format!("{stem}.json")), &json);
    write(&results.join(format!("{stem}.md")), table);
    match report.svg() {
        Ok(svg) => {
            write(&results.join(format!("{stem}.svg")), &svg);
            if docs {
                let docs = manifest.join("../docs");
                write(&docs.join("benchmarks.svg"), &svg);
                update_docs(&docs.join("benchmarks.md"), report, table);
            }
        }
        Err(e) => eprintln!("benchmarks: chart failed: {e}"),
    }
    eprintln!(
        "benchmarks: done in {:.0} s; wrote {}",
        report.wall_s,
        results.join(format!("{stem}.json")).display()
    );
}

/// Writes a file; a failure is reported, not fatal (the run's figures
/// are printed anyway).
fn write(path: &Path, contents: &str) {
    if let Err(e) = std::fs::write(path, contents) {
        eprintln!("benchmarks: cannot write {}: {e}", path.display());
    }
}

/// Replaces what is between the result markers of docs/benchmarks.md.
fn update_docs(path: &Path, report: &Report, table: &str) {
    const START: &str = "<!-- results:start -->";
    const END: &str = "<!-- results:end -->";
    let Ok(doc) = std::fs::read_to_string(path) else {
        eprintln!("benchmarks: {} not found; not updated", path.display());
        return;
    };
    let (Some(a), Some(b)) = (doc.find(START), doc.find(END)) else {
        eprintln!("benchmarks: no result markers in {}", path.display());
        return;
    };
    let m = &report.machine;
    let body = format!(
        "{START}\n\nRun: `{}` — {:.0} s wall time. Machine: {} × {}, {:.0} GiB, Linux {}; \
         load average {} before, {} after; Prosody {}, ejabberd {}; {}.\n\n{}\n\n\
         ![latency and fan-out](benchmarks.svg)\n\n",
        report.command,
        report.wall_s,
        m.nproc,
        m.cpu,
        m.memory_gib,
        m.kernel,
        m.load_before,
        m.load_after,
        m.prosody,
        m.ejabberd,
        m.rustc,
        table.trim_end()
    );
    let new = format!("{}{}{}", &doc[..a], body, &doc[b..]);
    write(path, &new);
}
