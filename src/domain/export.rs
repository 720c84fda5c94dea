//! Audit exports: CSV that spreadsheets cannot be tricked into executing, and JSON lines.

use crate::db::repo::audit::AuditEvent;

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

fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub fn csv_header() -> String {
    format!("{}\r\n", COLUMNS.join(","))
}

pub fn csv_row(e: &AuditEvent) -> String {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let cells = [
        e.id.to_string(),
        iso(e.created_at),
        e.event.clone(),
        e.outcome.clone(),
        o(&e.actor_id),
        o(&e.target_id),
        o(&e.ip),
        o(&e.user_agent),
        o(&e.request_id),
        e.details.clone(),
        e.prev_hash.clone(),
        e.hash.clone(),
    ];
    let mut line = cells.iter().map(|c| cell(c)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

pub fn json_line(e: &AuditEvent) -> String {
    let details: serde_json::Value =
        serde_json::from_str(&e.details).unwrap_or(serde_json::Value::String(e.details.clone()));
    let mut line = serde_json::json!({
        "id": e.id,
        "time": iso(e.created_at),
        "event": e.event,
        "outcome": e.outcome,
        "actor_id": e.actor_id,
        "target_id": e.target_id,
        "ip": e.ip,
        "user_agent": e.user_agent,
        "request_id": e.request_id,
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
