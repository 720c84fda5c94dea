//! The layer rules (CONTRIBUTING.md, docs/architecture.md), checked on the source so
//! they stay true:
//!
//! - the top-level modules form a stack: each may use only modules below it, so there
//!   is no cycle between them (`domain` and the small leaves at the bottom, then
//!   `config`, `files`, `master_key`, `db`, `mail`, `auth`, `web`, `startup`, `cli`);
//! - `domain` does no I/O and uses nothing else of the crate;
//! - only `db` uses diesel;
//! - `auth` knows nothing of actix or of the web layer;
//! - `web` never reaches into `db::repo`: it calls services;
//! - inside `auth`, the capabilities (`sign_in`, `sessions`, `mfa`, `accounts`,
//!   `access`, `oauth`, `audit`, `throttle`, …) use each other without cycles, so each
//!   can be read, tested and changed with only what is below it in mind.
//!
//! The check reads every `crate::…` path and every external crate path in the code
//! (comments left out). Its own tests feed it the violations it exists to catch.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level modules from the bottom of the stack up. A module may use those with a
/// lower rank only.
const RANKS: &[(&str, u8)] = &[
    ("clock", 0),
    ("counters", 0),
    ("domain", 0),
    ("telemetry", 0),
    ("config", 1),
    ("files", 2),
    ("master_key", 3),
    ("db", 4),
    ("mail", 5),
    ("auth", 6),
    ("web", 7),
    ("startup", 8),
    ("cli", 9),
    ("lib", 10),
    ("main", 10),
];

/// Crates and std paths that mean input/output or a framework: not for `domain`.
const IO: &[&str] = &[
    "diesel",
    "actix_web",
    "actix_session",
    "tokio",
    "reqwest",
    "redis",
    "lettre",
    "std::fs",
    "std::net::Tcp",
    "std::net::Udp",
    "std::process",
    "std::io::stdin",
];

/// What `auth` must not know: the HTTP framework, the session middleware and the web layer.
const WEB_ONLY: &[&str] = &["actix_web", "actix_session", "actix_http", "crate::web"];

struct Source {
    /// The top-level module the file belongs to (`auth`, `web`, `lib`, …).
    module: String,
    path: String,
    /// The file without its comments.
    code: String,
}

fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string ("https://…") ends the line early: that only
            // loses text, never invents a path.
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn sources() -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&root).expect("under src/");
            let first = rel.components().next().expect("a path").as_os_str();
            let module = Path::new(first)
                .file_stem()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path).expect("source is UTF-8");
            Source {
                module,
                path: rel.display().to_string(),
                code: without_comments(&text),
            }
        })
        .collect()
}

fn rank(module: &str) -> Option<u8> {
    RANKS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

/// `crate::name` paths in `code` (each top-level module named once).
fn crate_uses(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `portcullis_crate::` or the like
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

/// Whether `code` names the path `what` (`diesel`, `std::fs`, `crate::web`) as a path
/// of its own, not as the tail of a longer name.
fn mentions(code: &str, what: &str) -> bool {
    code.match_indices(what).any(|(i, _)| {
        let before = code[..i].chars().last();
        let after = code[i + what.len()..].chars().next();
        let starts = !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':');
        let ends = !after.is_some_and(|c| c.is_alphanumeric() || c == '_');
        starts && ends
    })
}

/// The `auth` capability a file belongs to (`auth/accounts/links.rs` → `accounts`,
/// `auth/password.rs` → `password`); `None` outside `auth` and for `auth/mod.rs`.
fn capability(path: &str) -> Option<String> {
    let rest = path.strip_prefix("auth/")?;
    let first = rest.split('/').next()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "mod").then(|| name.to_string())
}

/// Cycles between `auth`'s capabilities, each as `a → b → … → a`.
fn capability_cycles(sources: &[Source]) -> Vec<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let caps: BTreeSet<String> = sources.iter().filter_map(|s| capability(&s.path)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in sources {
        let Some(own) = capability(&s.path) else {
            continue;
        };
        let mut rest = s.code.as_str();
        while let Some(i) = rest.find("crate::auth::") {
            rest = &rest[i + "crate::auth::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name != own && caps.contains(&name) {
                edges.entry(own.clone()).or_default().insert(name);
            }
        }
    }
    // A capability is in a cycle when it can reach itself; report each cycle once, from
    // its smallest member, along a shortest way back.
    let mut found = Vec::new();
    let mut reported = BTreeSet::new();
    for start in &caps {
        if reported.contains(start) {
            continue;
        }
        let mut previous: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut back = None;
        while let Some(v) = queue.pop_front() {
            for w in edges.get(v).into_iter().flatten() {
                if w == start {
                    back = Some(v);
                    break;
                }
                if !previous.contains_key(w) {
                    previous.insert(w, v);
                    queue.push_back(w);
                }
            }
            if back.is_some() {
                break;
            }
        }
        let Some(mut v) = back else { continue };
        let mut cycle = vec![start.clone()];
        let mut way = vec![v.clone()];
        while v != start {
            match previous.get(v) {
                Some(p) if *p != start => {
                    way.push((*p).clone());
                    v = p;
                }
                _ => break,
            }
        }
        way.reverse();
        cycle.extend(way);
        cycle.push(start.clone());
        reported.extend(cycle.iter().cloned());
        found.push(format!(
            "auth capabilities in a cycle: {}",
            cycle.join(" → ")
        ));
    }
    found
}

fn violations(sources: &[Source]) -> Vec<String> {
    let mut found = capability_cycles(sources);
    for s in sources {
        let Some(own) = rank(&s.module) else {
            found.push(format!(
                "{}: top-level module `{}` has no place in the layer stack (tests/api/layers.rs RANKS)",
                s.path, s.module
            ));
            continue;
        };
        for used in crate_uses(&s.code) {
            if used == s.module {
                continue;
            }
            match rank(&used) {
                Some(r) if r < own => {}
                _ => found.push(format!(
                    "{}: `{}` uses `crate::{used}`, which is not below it",
                    s.path, s.module
                )),
            }
        }
        if s.module == "domain" {
            for io in IO {
                if mentions(&s.code, io) {
                    found.push(format!(
                        "{}: domain does I/O or uses a framework: `{io}`",
                        s.path
                    ));
                }
            }
        }
        if s.module != "db" && mentions(&s.code, "diesel") {
            found.push(format!("{}: only db uses diesel", s.path));
        }
        if s.module == "auth" {
            for w in WEB_ONLY {
                if mentions(&s.code, w) {
                    found.push(format!("{}: auth knows nothing of the web: `{w}`", s.path));
                }
            }
        }
        // `db::repo` anywhere in a path, or a `repo` alias of one.
        if s.module == "web" && (s.code.contains("db::repo") || mentions(&s.code, "repo")) {
            found.push(format!("{}: web calls services, never db::repo", s.path));
        }
    }
    found
}

#[test]
fn the_source_keeps_the_layer_rules() {
    let sources = sources();
    assert!(sources.len() > 50, "the walk found the source files");
    let found = violations(&sources);
    assert!(
        found.is_empty(),
        "layer rules broken:\n{}",
        found.join("\n")
    );
}

fn fake(path: &str, code: &str) -> Source {
    Source {
        module: path.split(['/', '.']).next().unwrap().to_string(),
        path: path.to_string(),
        code: without_comments(code),
    }
}

fn caught(path: &str, code: &str) -> bool {
    !violations(&[fake(path, code)]).is_empty()
}

#[test]
fn each_rule_catches_the_violations_it_is_for() {
    // auth reaching into the web layer or actix
    assert!(caught(
        "auth/webauthn.rs",
        "use crate::web::session::SignedIn;"
    ));
    assert!(caught(
        "auth/throttle.rs",
        "crate::web::metrics::rate_limited(x);"
    ));
    assert!(caught(
        "auth/login.rs",
        "fn f(r: actix_web::HttpRequest) {}"
    ));
    // diesel outside db
    assert!(caught("auth/rbac.rs", "use diesel::prelude::*;"));
    assert!(caught(
        "auth/audit.rs",
        "let n = diesel::delete(a::table).execute(c)?;"
    ));
    assert!(caught("web/error.rs", "fn f(e: diesel::result::Error) {}"));
    // domain holding a database row, or doing I/O
    assert!(caught(
        "domain/export.rs",
        "use crate::db::repo::audit::AuditEvent;"
    ));
    assert!(caught(
        "domain/email.rs",
        "let t = std::fs::read_to_string(p);"
    ));
    assert!(caught("domain/totp.rs", "tokio::spawn(async {});"));
    // web calling the repository
    assert!(caught(
        "web/handlers/forward.rs",
        "use crate::db::repo::{roles, users};"
    ));
    assert!(caught(
        "web/handlers/reauth.rs",
        "crate::db::repo::users::find(c, &uid)"
    ));
    // cycles between top-level modules: either half is refused
    assert!(caught("config.rs", "crate::db::backend_of(&url)"));
    assert!(caught("mail/worker.rs", "use crate::auth::audit::record;"));
    assert!(caught("db/conn.rs", "use crate::auth::InternalError;"));
    assert!(caught("auth/x.rs", "use crate::startup::Application;"));
    // a cycle between auth's capabilities (as accounts ↔ admin ↔ recovery was, before
    // admin and the emailed links became parts of accounts)
    assert!(
        !violations(&[
            fake(
                "auth/mfa/mod.rs",
                "use crate::auth::accounts::links::MailCtx;"
            ),
            fake("auth/accounts/mod.rs", "use crate::auth::mfa::status;"),
        ])
        .is_empty()
    );
    assert!(
        !violations(&[
            fake(
                "auth/sign_in/gate.rs",
                "crate::auth::sessions::Sessions::new_row"
            ),
            fake(
                "auth/sessions/mod.rs",
                "crate::auth::oauth::cache::BackChannelCache"
            ),
            fake("auth/oauth/grants.rs", "crate::auth::sign_in::gate::admit"),
        ])
        .is_empty()
    );
    // one capability's files may use each other
    assert!(
        violations(&[
            fake(
                "auth/accounts/mod.rs",
                "use crate::auth::accounts::admin::Admin;"
            ),
            fake(
                "auth/accounts/admin.rs",
                "use crate::auth::accounts::links::issue_reset;"
            ),
        ])
        .is_empty()
    );
    // a new top-level module must be placed in the stack
    assert!(caught("newthing.rs", "pub fn f() {}"));

    // and what is allowed passes
    assert!(!caught(
        "web/handlers/login.rs",
        "use crate::auth::sign_in::gate;"
    ));
    assert!(!caught(
        "auth/sessions/mod.rs",
        "use crate::db::{Db, QueryResult};"
    ));
    assert!(!caught(
        "db/conn.rs",
        "use diesel::prelude::*; use crate::config::DbBackend;"
    ));
    assert!(!caught(
        "domain/email.rs",
        "// see crate::web::ctx\nuse std::fmt;"
    ));
    assert!(!caught(
        "auth/oauth/jws.rs",
        "use crate::master_key::MasterKey;"
    ));
}
