use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Loads `text` as the config file, with no environment.
fn load_file(text: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(&p, text).unwrap();
    Config::load_from(Some(&p), &[])
}

fn numeric_keys() -> Vec<(KeyInfo, i128, i128)> {
    keys()
        .into_iter()
        .filter_map(|k| k.range.map(|(lo, hi)| (k, lo, hi)))
        .collect()
}

#[test]
fn defaults_serve_one_machine() {
    let c = Config::load_from(None, &[]).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert_eq!(c.public_url.as_str(), "http://localhost:8080/");
    assert!(c.database_url.starts_with("sqlite://"));
    assert_eq!(c.password_min_length, 10);
    assert_eq!(c.argon2_memory_kib, 19456);
    assert!(!c.is_https());
}

#[test]
fn data_dir_places_database_and_secret_key() {
    let c = Config::load_from(None, &env(&[("PORTCULLIS_DATA_DIR", "/srv/p")])).unwrap();
    assert_eq!(c.database_url, "sqlite:///srv/p/portcullis.db");
    assert_eq!(c.secret_key_file, PathBuf::from("/srv/p/secret.key"));
    assert_eq!(c.backend(), DbBackend::Sqlite);
}

#[test]
fn unknown_env_key_is_named() {
    let err = Config::load_from(None, &env(&[("PORTCULLIS_LISTN", "x")])).unwrap_err();
    assert!(err.to_string().contains("PORTCULLIS_LISTN"));
}

#[test]
fn unknown_file_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(&p, "listen = \"127.0.0.1:1\"\nlistn = 3\n").unwrap();
    let err = Config::load_from(Some(&p), &[]).unwrap_err();
    assert!(err.to_string().contains("listn"), "{err}");
}

#[test]
fn env_overrides_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.toml");
    std::fs::write(&p, "registration_enabled = true\n").unwrap();
    let c = Config::load_from(
        Some(&p),
        &env(&[
            ("PORTCULLIS_REGISTRATION_ENABLED", "false"),
            (
                "PORTCULLIS_REGISTRATION_ALLOWED_DOMAINS",
                "Example.com, @corp.org",
            ),
        ]),
    )
    .unwrap();
    assert!(!c.registration_enabled);
    assert_eq!(
        c.registration_allowed_domains,
        vec!["example.com", "corp.org"]
    );
}

#[test]
fn bad_database_scheme_is_refused() {
    let err = Config::load_from(None, &env(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
    assert!(err.to_string().contains("database_url"));
}

#[test]
fn file_values_of_every_type_are_read() {
    let c = load_file(
        "public_url = \"https://id.example\"\n\
         registration_enabled = false\n\
         trusted_proxies = [\"10.0.0.1\"]\n\
         access_token_ttl_secs = 120\n\
         password_min_length = 12\n",
    )
    .unwrap();
    assert!(c.is_https());
    assert!(!c.registration_enabled);
    assert_eq!(
        c.trusted_proxies,
        vec!["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(c.access_token_ttl_secs, 120);
    assert_eq!(c.password_min_length, 12);
}

#[test]
fn a_u32_overflow_is_refused_not_wrapped() {
    // 2^32: cast with `as` it would have become 0, then a limit of 1.
    let var = "PORTCULLIS_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE";
    let err = Config::load_from(None, &env(&[(var, "4294967296")])).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(var) && msg.contains("4294967296"), "{msg}");
    assert!(msg.contains("1 to 1000000"), "{msg}");

    let err = load_file("login_attempts_per_ip_per_minute = 4294967296\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("login_attempts_per_ip_per_minute"), "{msg}");
    assert!(msg.contains("1 to 1000000"), "{msg}");
}

#[test]
fn out_of_range_numbers_are_refused_naming_the_key() {
    let err =
        Config::load_from(None, &env(&[("PORTCULLIS_ARGON2_PARALLELISM", "1000")])).unwrap_err();
    assert!(
        err.to_string().contains("PORTCULLIS_ARGON2_PARALLELISM"),
        "{err}"
    );
    assert!(err.to_string().contains("1 to 64"), "{err}");

    let err = load_file("password_min_length = 4\n").unwrap_err();
    assert!(err.to_string().contains("password_min_length"), "{err}");
    assert!(err.to_string().contains("8 to 256"), "{err}");

    // A limit of 0 used to be raised to 1 in silence.
    let err = Config::load_from(
        None,
        &env(&[("PORTCULLIS_REGISTRATIONS_PER_IP_PER_HOUR", "0")]),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("PORTCULLIS_REGISTRATIONS_PER_IP_PER_HOUR")
    );
}

#[test]
fn negative_ttls_are_refused() {
    let var = "PORTCULLIS_ACCESS_TOKEN_TTL_SECS";
    let err = Config::load_from(None, &env(&[(var, "-5")])).unwrap_err();
    assert!(err.to_string().contains(var), "{err}");

    let err = load_file("session_lifetime_secs = -1\n").unwrap_err();
    assert!(err.to_string().contains("session_lifetime_secs"), "{err}");

    let err = FileConfig {
        password_reset_ttl_secs: Some(-30),
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    assert!(err.to_string().contains("password_reset_ttl_secs"), "{err}");

    let err = load_file("audit_retention_days = -1\n").unwrap_err();
    assert!(err.to_string().contains("audit_retention_days"), "{err}");
}

#[test]
fn unparsable_values_are_refused_naming_the_key_and_range() {
    let var = "PORTCULLIS_SESSION_IDLE_TIMEOUT_SECS";
    let err = Config::load_from(None, &env(&[(var, "30m")])).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(var) && msg.contains("1 to "), "{msg}");

    let err = load_file("session_idle_timeout_secs = \"1800\"\n").unwrap_err();
    assert!(
        err.to_string().contains("session_idle_timeout_secs"),
        "{err}"
    );

    let err = load_file("registration_enabled = \"yes\"\n").unwrap_err();
    assert!(err.to_string().contains("registration_enabled"), "{err}");

    let err = Config::load_from(
        None,
        &env(&[("PORTCULLIS_REQUIRE_VERIFIED_EMAIL", "maybe")]),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("PORTCULLIS_REQUIRE_VERIFIED_EMAIL"),
        "{err}"
    );
}

#[test]
fn argon2_memory_covers_its_lanes() {
    let err = FileConfig {
        argon2_memory_kib: Some(8),
        argon2_parallelism: Some(2),
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    assert!(err.to_string().contains("argon2_memory_kib"), "{err}");
}

/// Both ends of every declared range are accepted, one past either end refused, by
/// the environment variable and by the file key.
#[test]
fn every_numeric_range_is_enforced_at_both_ends() {
    for (k, lo, hi) in numeric_keys() {
        for ok in [lo, hi] {
            let c = Config::load_from(None, &env(&[(k.env, &ok.to_string())]));
            assert!(c.is_ok(), "{}={ok}: {:?}", k.env, c.err());
            let c = load_file(&format!("{} = {ok}\n", k.key));
            assert!(c.is_ok(), "{}={ok}: {:?}", k.key, c.err());
        }
        for bad in [lo - 1, hi + 1] {
            let err = Config::load_from(None, &env(&[(k.env, &bad.to_string())])).unwrap_err();
            assert!(err.to_string().contains(k.env), "{err}");
            assert!(err.to_string().contains(&format!("{lo} to {hi}")), "{err}");
            let err = load_file(&format!("{} = {bad}\n", k.key)).unwrap_err();
            assert!(err.to_string().contains(k.key), "{err}");
            assert!(err.to_string().contains(&format!("{lo} to {hi}")), "{err}");
        }
    }
}

/// Every declared key is recognised by its environment variable, and a value for it
/// loads (the default where there is one).
#[test]
fn every_key_is_accepted_by_its_env_var() {
    for k in keys() {
        let value = match (k.range, k.default.as_deref()) {
            (Some((lo, _)), _) => lo.to_string(),
            (None, Some(d)) => d.to_string(),
            (None, None) if k.key == "database_url" => "sqlite:///tmp/p.db".into(),
            (None, None) => "/tmp/p".into(),
        };
        let mut file = FileConfig::default();
        file.apply_env(&env(&[(k.env, &value)]))
            .unwrap_or_else(|e| panic!("{} not accepted: {e}", k.env));
        file.validate()
            .unwrap_or_else(|e| panic!("{}={value:?}: {e}", k.env));
    }
}

#[test]
fn the_key_table_is_consistent() {
    let all = keys();
    let mut names: Vec<_> = all.iter().map(|k| k.key).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len(), "a file key is declared twice");
    let mut vars: Vec<_> = all.iter().map(|k| k.env).collect();
    vars.sort_unstable();
    vars.dedup();
    assert_eq!(
        vars.len(),
        all.len(),
        "an environment variable is declared twice"
    );
    for k in &all {
        let upper = k.key.to_ascii_uppercase();
        assert!(
            k.env == upper || k.env == format!("PORTCULLIS_{upper}"),
            "{} does not follow the naming of {}",
            k.env,
            k.key
        );
        assert!(!k.doc.is_empty(), "{} has no documentation", k.key);
        assert!(!ENV_ALLOWED_EXTRA.contains(&k.env));
        if let Some((lo, hi)) = k.range {
            assert!(lo <= hi, "{}: empty range", k.key);
            if let Some(d) = &k.default {
                let d: i128 = d.parse().unwrap();
                assert!(
                    (lo..=hi).contains(&d),
                    "{}: default {d} outside {lo}..={hi}",
                    k.key
                );
            }
        }
    }
    FileConfig::default()
        .validate()
        .expect("the defaults are valid");
}

/// README's configuration table has a row for every key (and no other), with its
/// environment variable, its fixed default and its allowed range as declared.
#[test]
fn readme_configuration_table_matches_the_keys() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Configuration\n"))
        .expect("README has a Configuration section");
    let rows: Vec<&str> = section.lines().filter(|l| l.starts_with("| `")).collect();
    let all = keys();
    for row in &rows {
        let key = row.split('`').nth(1).unwrap_or_default();
        assert!(
            all.iter().any(|k| k.key == key),
            "README documents unknown key {key}"
        );
    }
    for k in &all {
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("| `{}` |", k.key)))
            .unwrap_or_else(|| panic!("README has no row for {}", k.key));
        assert!(
            row.contains(&format!("`{}`", k.env)),
            "README: {} for {}",
            k.env,
            k.key
        );
        if let Some(d) = k.default.as_deref().filter(|d| !d.is_empty()) {
            assert!(
                row.contains(&format!("`{d}`")),
                "README: default {d} of {}",
                k.key
            );
        }
        if let Some((lo, hi)) = k.range {
            assert!(
                row.contains(&format!("{lo} to {hi}")),
                "README: range of {}",
                k.key
            );
        }
    }
}
