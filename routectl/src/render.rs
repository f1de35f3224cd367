//! Printing: aligned, borderless tables for people (like `birdc` and `calicoctl`) and JSON for
//! scripts, plus the small formats they share (durations, optional values).

use comfy_table::presets::NOTHING;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use serde::Serialize;

use crate::cli::Output;

/// A table with the given column headers, left-aligned and without borders.
pub fn table(headers: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().map(|h| h.to_uppercase()));
    for column in t.column_iter_mut() {
        column.set_cell_alignment(CellAlignment::Left);
        column.set_padding((0, 2));
    }
    t
}

/// Renders `table` as text, one line per row, trailing blanks removed.
pub fn text(table: &Table) -> String {
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Prints `value` as JSON, or as the text `people` makes of it.
pub fn emit<T: Serialize>(
    output: Output,
    value: &T,
    people: impl FnOnce(&T) -> String,
) -> Result<(), crate::Failure> {
    let text = match output {
        Output::Json => serde_json::to_string_pretty(value)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| crate::Failure::Usage(format!("cannot print JSON: {e}")))?,
        Output::Table => people(value),
    };
    write_stdout(text.as_bytes())
}

/// Writes to stdout; a reader that went away (`routectl peers | head`) is not an error.
pub fn write_stdout(bytes: &[u8]) -> Result<(), crate::Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(crate::Failure::Usage(
            format!("cannot write to stdout: {e}"),
        )),
        _ => Ok(()),
    }
}

/// `3d04h`, `2h05m`, `4m12s`, `37s`: short like birdc's "since" column.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3_600,
        secs % 3_600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

/// An optional value, or `-`.
pub fn or_dash<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// A list joined with `sep`, or `-` when empty.
pub fn list<T: std::fmt::Display>(items: &[T], sep: &str) -> String {
    if items.is_empty() {
        return "-".to_string();
    }
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_birdc() {
        for (secs, want) in [
            (0, "0s"),
            (59, "59s"),
            (60, "1m00s"),
            (3_599, "59m59s"),
            (3_600, "1h00m"),
            (86_399, "23h59m"),
            (86_400, "1d00h"),
            (u64::MAX, "213503982334601d07h"),
        ] {
            assert_eq!(duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn tables_align_columns_without_borders() {
        let mut t = table(&["name", "state"]);
        t.add_row(["a-long-name", "Established"]);
        t.add_row(["b", "Idle"]);
        assert_eq!(
            text(&t),
            "NAME         STATE\na-long-name  Established\nb            Idle\n"
        );
    }
}
