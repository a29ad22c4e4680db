//! The campaign's results: one [`Row`] per case, one table for all.

use std::fmt::Write as _;

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Every part at a small scale: what the tests and CI run.
    Quick,
    /// The campaign as `docs/reliability.md` reports it.
    Full,
}

/// The part of the campaign a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// 1. Hostile stanzas.
    Hostile,
    /// 2. Load held.
    Load,
    /// 3. Floods.
    Flood,
    /// 4. Faults survived.
    Fault,
    /// 5. Bad input at the API.
    Api,
}

impl Part {
    /// The part's heading in the table.
    pub fn title(self) -> &'static str {
        match self {
            Part::Hostile => "1. hostile stanzas",
            Part::Load => "2. load held",
            Part::Flood => "3. flood",
            Part::Fault => "4. fault",
            Part::Api => "5. API input",
        }
    }
}

/// One case and what it showed.
#[derive(Debug, Clone)]
pub struct Row {
    /// Which part.
    pub part: Part,
    /// The case, with its scale ("Prosody: 32 peers × 50/s × 60 s, 1 KiB").
    pub case: String,
    /// What was measured, as figures ("sent 96000, received 96000 × 31,
    /// lost 0, duplicated 0, out of order 0").
    pub figures: String,
    /// Memory at start and end (and peak where it matters), if measured.
    pub memory: Option<String>,
    /// Whether the case held: what it must show, it showed.
    pub held: bool,
}

impl Row {
    /// A row that held or not.
    pub fn new(part: Part, case: impl Into<String>, figures: impl Into<String>, held: bool) -> Row {
        Row {
            part,
            case: case.into(),
            figures: figures.into(),
            memory: None,
            held,
        }
    }

    /// The same row with its memory figures.
    pub fn with_memory(mut self, memory: impl Into<String>) -> Row {
        self.memory = Some(memory.into());
        self
    }
}

/// The rows as one Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out =
        String::from("| part | case | figures | memory | held |\n|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            r.part.title(),
            cell(&r.case),
            cell(&r.figures),
            cell(r.memory.as_deref().unwrap_or("")),
            if r.held { "yes" } else { "**no**" }
        );
    }
    out
}

/// Table cells hold no pipes or line breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Fails with every row that did not hold: what the tests call.
pub fn assert_held(rows: &[Row]) {
    assert!(!rows.is_empty(), "the part produced no rows");
    let failed: Vec<&Row> = rows.iter().filter(|r| !r.held).collect();
    assert!(
        failed.is_empty(),
        "cases that did not hold:\n{}",
        table(rows)
    );
    println!("{}", table(rows));
}

/// Resident memory of this process, now and at its peak (KiB), from
/// `/proc/self/status`.
pub fn own_memory_kib() -> (u64, u64) {
    memory_kib_of("self")
}

/// Resident memory of process `pid` (or `"self"`), now and at its peak
/// (KiB); zeros when it cannot be read.
pub fn memory_kib_of(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) process `pid` has used so far, in seconds,
/// from `/proc/<pid>/stat`; `None` when it cannot be read.
pub fn cpu_seconds_of(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    // Linux reports USER_HZ = 100 on every architecture we run on; getconf
    // says otherwise where it differs.
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Where the generated part of `docs/reliability.md` starts and ends: the
/// prose around it is written by hand and kept as it is.
const START: &str = "<!-- reliability:start -->";
const END: &str = "<!-- reliability:end -->";

/// `docs/reliability.md` with the run's table in place of the previous
/// one: `current` is the file as it is (empty if there is none).
pub fn document(current: &str, table: &str, took: std::time::Duration) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let generated = format!(
        "{START}\n\
         The full run: `cargo run --release -p reliability`, {took:.0?} on {cpus} CPUs \
         (load average {load} at the end).\n\n{table}{END}"
    );
    match (current.find(START), current.find(END)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{generated}{}", &current[..a], &current[b + END.len()..])
        }
        _ => format!("# Reliability\n\n{generated}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prose_around_the_table_is_kept() {
        let rows = [Row::new(Part::Flood, "a", "b", true)];
        let first = document("", &table(&rows), std::time::Duration::from_secs(1));
        let edited =
            first.replace("# Reliability\n", "# Reliability\n\nHand-written.\n") + "After.\n";
        let rows = [Row::new(Part::Flood, "a", "c|d", false)];
        let again = document(&edited, &table(&rows), std::time::Duration::from_secs(2));
        assert!(again.contains("Hand-written.\n") && again.ends_with("After.\n"));
        assert!(
            again.contains("| 3. flood | a | c\\|d |  | **no** |"),
            "{again}"
        );
        assert!(
            !again.contains("| b |"),
            "the old table is replaced: {again}"
        );
    }
}
