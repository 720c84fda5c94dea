//! Audit exports: CSV that spreadsheets cannot be tricked into executing, and JSON lines.

use super::audit::ChainFields;

/// One stored event as exported: its id, its chained content and its links.
pub struct ExportedEvent<'a> {
    pub id: i64,
    pub fields: ChainFields<'a>,
    pub prev_hash: &'a str,
    pub hash: &'a str,
}

const COLUMNS: [&str; 12] = [
    "id",
    "time",
    "event",
    "outcome",
    "actor_id",
    "target_id",
    "ip",
    "user_agent",
    "request_id",
    "details",
    "prev_hash",
    "hash",
];

/// One CSV cell (RFC 4180 quoting). A cell a spreadsheet would read as a formula
/// (starting with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`.
pub fn cell(value: &str) -> String {
    let neutral = match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}"),
        _ => value.to_string(),
    };
    if neutral.contains([',', '"', '\n', '\r']) || neutral != value {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

pub fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub fn csv_header() -> String {
    format!("{}\r\n", COLUMNS.join(","))
}

pub fn csv_row(e: &ExportedEvent<'_>) -> String {
    let f = &e.fields;
    let o = |v: Option<&str>| v.unwrap_or_default().to_string();
    let cells = [
        e.id.to_string(),
        iso(f.created_at),
        f.event.to_string(),
        f.outcome.to_string(),
        o(f.actor_id),
        o(f.target_id),
        o(f.ip),
        o(f.user_agent),
        o(f.request_id),
        f.details.to_string(),
        e.prev_hash.to_string(),
        e.hash.to_string(),
    ];
    let mut line = cells.iter().map(|c| cell(c)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

pub fn json_line(e: &ExportedEvent<'_>) -> String {
    let f = &e.fields;
    let details: serde_json::Value = serde_json::from_str(f.details)
        .unwrap_or_else(|_| serde_json::Value::String(f.details.to_string()));
    let mut line = serde_json::json!({
        "id": e.id,
        "time": iso(f.created_at),
        "event": f.event,
        "outcome": f.outcome,
        "actor_id": f.actor_id,
        "target_id": f.target_id,
        "ip": f.ip,
        "user_agent": f.user_agent,
        "request_id": f.request_id,
        "details": details,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
    .to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn formulas_are_neutralised_and_quoting_follows_rfc_4180() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("+1"), "\"'+1\"");
        assert_eq!(cell("-1"), "\"'-1\"");
        assert_eq!(cell("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(cell("mid=dle"), "mid=dle");
    }
}
