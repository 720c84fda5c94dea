use std::net::IpAddr;

use proptest::prelude::*;

use super::compiled::Compiled;
use super::rule::{RuleSpec, check_all};
use super::*;

fn spec(policy: &str) -> RuleSpec {
    RuleSpec {
        domain: vec!["app.example.com".into()],
        policy: policy.into(),
        ..Default::default()
    }
}

fn req(host: &str, path: &str) -> Request {
    Request::new(host, path, "GET", "192.0.2.1".parse().unwrap())
}

fn alice() -> Subject {
    Subject {
        email: "alice@example.com".into(),
        groups: vec!["staff".into()],
        roles: vec!["admin".into()],
    }
}

fn one(s: RuleSpec) -> Vec<Rule> {
    check_all(vec![s]).unwrap()
}

fn policy_of(rules: &[Rule], r: &Request, who: Option<&Subject>) -> Option<Policy> {
    match decide(rules, Policy::Deny, r, who) {
        Verdict::Policy(p, DecidedBy::Rule(_)) => Some(p),
        _ => None,
    }
}

#[test]
fn domains_exact_wildcard_and_any() {
    let exact = one(spec("bypass"));
    assert!(policy_of(&exact, &req("app.example.com", "/"), None).is_some());
    assert!(policy_of(&exact, &req("APP.example.com.", "/"), None).is_some());
    assert!(policy_of(&exact, &req("x.app.example.com", "/"), None).is_none());
    let wild = one(RuleSpec {
        domain: vec!["*.example.com".into()],
        ..spec("bypass")
    });
    assert!(policy_of(&wild, &req("a.b.example.com", "/"), None).is_some());
    assert!(policy_of(&wild, &req("example.com", "/"), None).is_none());
    assert!(policy_of(&wild, &req("badexample.com", "/"), None).is_none());
    let any = one(RuleSpec {
        domain: vec!["*".into()],
        ..spec("bypass")
    });
    assert!(policy_of(&any, &req("anything.test", "/"), None).is_some());
}

#[test]
fn paths_prefix_and_regex_on_the_normalised_path() {
    let rules = one(RuleSpec {
        path: vec!["/admin".into()],
        path_regex: vec!["^/api/v[0-9]+/".into()],
        ..spec("deny")
    });
    for p in [
        "/admin",
        "/admin/users",
        "/%61dmin",
        "//admin/x",
        "/public/../admin",
    ] {
        assert_eq!(
            policy_of(&rules, &req("app.example.com", p), None),
            Some(Policy::Deny),
            "{p}"
        );
    }
    assert!(policy_of(&rules, &req("app.example.com", "/api/v2/x"), None).is_some());
    for p in ["/administrator", "/api/vx/", "/", "/public/admin"] {
        assert_eq!(
            policy_of(&rules, &req("app.example.com", p), None),
            None,
            "{p}"
        );
    }
}

#[test]
fn methods_and_networks() {
    let rules = one(RuleSpec {
        method: vec!["post".into()],
        network: vec!["10.0.0.0/8".into(), "2001:db8::1".into()],
        ..spec("deny")
    });
    let at = |method: &str, ip: &str| {
        let r = Request::new(
            "app.example.com",
            "/",
            method,
            ip.parse::<IpAddr>().unwrap(),
        );
        policy_of(&rules, &r, None)
    };
    assert_eq!(at("POST", "10.1.2.3"), Some(Policy::Deny));
    assert_eq!(at("POST", "2001:db8::1"), Some(Policy::Deny));
    assert_eq!(at("GET", "10.1.2.3"), None);
    assert_eq!(at("POST", "192.0.2.1"), None);
    assert_eq!(at("POST", "2001:db8::2"), None);
}

#[test]
fn subjects_users_groups_roles_and_email_domains() {
    let with = |s: &str| {
        one(RuleSpec {
            subject: vec![s.into()],
            ..spec("one_factor")
        })
    };
    let r = req("app.example.com", "/");
    let a = alice();
    for s in [
        "user:ALICE@example.com",
        "group:staff",
        "role:admin",
        "email_domain:example.com",
    ] {
        assert_eq!(
            policy_of(&with(s), &r, Some(&a)),
            Some(Policy::OneFactor),
            "{s}"
        );
    }
    for s in [
        "user:bob@example.com",
        "group:ops",
        "role:auditor",
        "email_domain:example.org",
    ] {
        assert_eq!(policy_of(&with(s), &r, Some(&a)), None, "{s}");
    }
    // Not known who asks: sign in first.
    assert_eq!(
        decide(&with("group:staff"), Policy::Deny, &r, None),
        Verdict::NeedsIdentity(0)
    );
}

#[test]
fn first_match_wins_and_the_default_decides_the_rest() {
    let rules = check_all(vec![
        RuleSpec {
            path: vec!["/public".into()],
            ..spec("bypass")
        },
        RuleSpec {
            subject: vec!["group:staff".into()],
            ..spec("two_factor")
        },
        spec("deny"),
    ])
    .unwrap();
    let a = alice();
    let bob = Subject {
        email: "bob@example.com".into(),
        ..Default::default()
    };
    let d = |p: &str, who: Option<&Subject>| {
        decide(&rules, Policy::OneFactor, &req("app.example.com", p), who)
    };
    assert_eq!(
        d("/public/x", None),
        Verdict::Policy(Policy::Bypass, DecidedBy::Rule(0))
    );
    assert_eq!(
        d("/x", Some(&a)),
        Verdict::Policy(Policy::TwoFactor, DecidedBy::Rule(1))
    );
    assert_eq!(
        d("/x", Some(&bob)),
        Verdict::Policy(Policy::Deny, DecidedBy::Rule(2))
    );
    assert_eq!(
        decide(
            &rules,
            Policy::OneFactor,
            &req("other.example.com", "/"),
            None
        ),
        Verdict::Policy(Policy::OneFactor, DecidedBy::Default)
    );
}

#[test]
fn bad_rules_are_refused_with_the_field_named() {
    let err = |s: RuleSpec| check_all(vec![s]).unwrap_err();
    assert!(err(spec("maybe")).contains("not a policy"));
    assert!(
        err(RuleSpec {
            domain: vec![],
            ..spec("deny")
        })
        .contains("domain is required")
    );
    assert!(
        err(RuleSpec {
            domain: vec!["exa mple.com".into()],
            ..spec("deny")
        })
        .contains("domain")
    );
    assert!(
        err(RuleSpec {
            path: vec!["admin".into()],
            ..spec("deny")
        })
        .contains("must start with /")
    );
    assert!(
        err(RuleSpec {
            path_regex: vec!["(".into()],
            ..spec("deny")
        })
        .contains("path_regex")
    );
    assert!(
        err(RuleSpec {
            network: vec!["10.0.0.0/33".into()],
            ..spec("deny")
        })
        .contains("network")
    );
    assert!(
        err(RuleSpec {
            subject: vec!["team:x".into()],
            ..spec("deny")
        })
        .contains("subject")
    );
    assert!(
        err(RuleSpec {
            subject: vec!["group:x".into()],
            ..spec("bypass")
        })
        .contains("bypass")
    );
    assert!(
        err(RuleSpec {
            name: Some("api".into()),
            policy: "x".into(),
            ..spec("deny")
        })
        .contains("\"api\"")
    );
}

#[test]
fn rules_read_from_toml_take_one_value_or_a_list() {
    let s: RuleSpec =
        toml::from_str("domain = \"app.example.com\"\npath = [\"/a\", \"/b\"]\npolicy = \"deny\"")
            .unwrap();
    assert_eq!(s.domain, vec!["app.example.com"]);
    assert_eq!(s.path, vec!["/a", "/b"]);
    assert!(
        toml::from_str::<RuleSpec>("domain = \"x\"\npolicy = \"deny\"\npaths = \"/a\"").is_err()
    );
}

// The compiled form decides as the list does, for any rules and requests drawn from a
// small world (so that matches are frequent).
fn arb_spec() -> impl Strategy<Value = RuleSpec> {
    let domain = prop::sample::select(vec![
        "a.test", "b.test", "*.test", "*", "x.a.test", "*.a.test",
    ]);
    let path = prop::sample::select(vec!["/", "/admin", "/admin/", "/api", "/pub/x"]);
    let regex = prop::sample::select(vec!["^/api/", "x$", "^/admin/[0-9]+"]);
    let method = prop::sample::select(vec!["GET", "POST"]);
    let net = prop::sample::select(vec!["10.0.0.0/8", "192.0.2.1", "::1/128"]);
    let subject = prop::sample::select(vec![
        "group:g1",
        "role:r1",
        "user:u@x.test",
        "email_domain:x.test",
    ]);
    let policy = prop::sample::select(vec!["deny", "one_factor", "two_factor", "bypass"]);
    (
        prop::collection::vec(domain, 1..3),
        prop::collection::vec(path, 0..3),
        prop::collection::vec(regex, 0..2),
        prop::collection::vec(method, 0..2),
        prop::collection::vec(net, 0..2),
        prop::collection::vec(subject, 0..2),
        policy,
    )
        .prop_map(|(d, p, r, m, n, s, pol)| RuleSpec {
            name: None,
            domain: d.into_iter().map(String::from).collect(),
            path: p.into_iter().map(String::from).collect(),
            path_regex: r.into_iter().map(String::from).collect(),
            method: m.into_iter().map(String::from).collect(),
            network: n.into_iter().map(String::from).collect(),
            subject: if pol == "bypass" {
                vec![]
            } else {
                s.into_iter().map(String::from).collect()
            },
            policy: pol.to_string(),
        })
}

fn arb_request() -> impl Strategy<Value = (Request, Option<Subject>)> {
    (
        prop::sample::select(vec![
            "a.test",
            "b.test",
            "x.a.test",
            "y.x.a.test",
            "test",
            "c.other",
        ]),
        prop::sample::select(vec![
            "/",
            "/admin",
            "/admin/7",
            "/administrator",
            "/api/v1",
            "/pub/x",
            "/%61dmin/1",
            "/x",
        ]),
        prop::sample::select(vec!["GET", "POST", "PUT"]),
        prop::sample::select(vec!["10.1.1.1", "192.0.2.1", "::1", "198.51.100.9"]),
        prop::option::of((
            prop::sample::select(vec!["u@x.test", "v@y.test"]),
            prop::collection::vec(prop::sample::select(vec!["g1", "g2"]), 0..2),
            prop::collection::vec(prop::sample::select(vec!["r1", "r2"]), 0..2),
        )),
    )
        .prop_map(|(h, p, m, ip, who)| {
            (
                Request::new(h, p, m, ip.parse().unwrap()),
                who.map(|(e, g, r)| Subject {
                    email: e.into(),
                    groups: g.into_iter().map(String::from).collect(),
                    roles: r.into_iter().map(String::from).collect(),
                }),
            )
        })
}

proptest! {
    #[test]
    fn the_compiled_rules_decide_as_the_list_does(
        specs in prop::collection::vec(arb_spec(), 0..30),
        requests in prop::collection::vec(arb_request(), 1..20),
        default in prop::sample::select(vec![Policy::Deny, Policy::OneFactor, Policy::TwoFactor]),
    ) {
        let rules = check_all(specs).unwrap();
        let compiled = Compiled::new(rules.clone(), default);
        for (r, who) in &requests {
            prop_assert_eq!(compiled.decide(r, who.as_ref()), decide(&rules, default, r, who.as_ref()));
        }
    }
}

#[test]
fn a_principal_lends_its_subject_and_keeps_it() {
    let mut p = super::Principal {
        id: "u1".into(),
        email: "Alice@Example.com".into(),
        name: "Alice".into(),
        roles: vec!["admin".into()],
        groups: vec!["staff".into(), "ops".into()],
    };
    let seen = p.as_subject(|s| (s.email.clone(), s.groups.clone(), s.roles.clone()));
    assert_eq!(
        seen,
        (
            "Alice@Example.com".to_string(),
            vec!["staff".to_string(), "ops".to_string()],
            vec!["admin".to_string()]
        )
    );
    assert_eq!(p.email, "Alice@Example.com");
    assert_eq!(p.groups, ["staff", "ops"]);
    assert_eq!(p.roles, ["admin"]);
    // Rules compare the address without regard to case.
    let rules = one(RuleSpec {
        subject: vec!["user:alice@example.com".into()],
        ..spec("one_factor")
    });
    let r = req("app.example.com", "/");
    assert_eq!(
        p.as_subject(|s| policy_of(&rules, &r, Some(s))),
        Some(Policy::OneFactor)
    );
}
