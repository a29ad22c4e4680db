//! How values read in a table cell.

use crate::stats::Summary;

use super::Res;

/// A duration given in µs, in the unit that reads best.
pub fn dur(us: f64) -> String {
    if us >= 10_000_000.0 {
        format!("{:.1} s", us / 1e6)
    } else if us >= 10_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1e3)
    } else if us >= 10.0 {
        format!("{us:.0} µs")
    } else {
        format!("{us:.2} µs")
    }
}

/// A difference given in µs, with its sign.
pub fn signed_dur(us: f64) -> String {
    if us < 0.0 {
        format!("−{}", dur(-us))
    } else {
        format!("+{}", dur(us))
    }
}

pub(crate) fn summary4(s: &Summary) -> String {
    if s.n == 0 {
        return "no samples".into();
    }
    format!(
        "{} / {} / {} / {}",
        dur(s.p50),
        dur(s.p90),
        dur(s.p99),
        dur(s.max)
    )
}

pub(crate) fn err_cell(e: &str) -> String {
    // Keep the table one line per row; the JSON has the whole message.
    let short: String = e.chars().take(60).collect();
    format!("error: {}", short.replace('|', "/"))
}

pub(crate) fn cell<T>(r: &Res<T>, f: impl Fn(&T) -> String) -> String {
    match r {
        Ok(v) => f(v),
        Err(e) => err_cell(e),
    }
}

pub(crate) fn lost_suffix(lost: usize) -> String {
    if lost == 0 {
        String::new()
    } else {
        format!(" ({lost} lost)")
    }
}

pub(crate) fn bytes(b: f64) -> String {
    if b >= 10.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}
