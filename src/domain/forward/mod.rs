//! Forward auth (`/auth/forward`): where a reverse proxy may send a user back to after
//! signing in, so the endpoint is never an open redirect. Two kinds of address pass:
//!
//! - this service's own origin, exactly: the public URL's scheme, host and port (another
//!   port on the same host is another service, perhaps one any local user can start);
//! - a configured domain or any subdomain of it, over https (http too only when the
//!   public URL itself is http: a deployment without TLS anywhere), on the scheme's
//!   default port unless the entry names one (`example.com:8443`). The default-port
//!   rule is the least that real deployments need: apps behind the same proxy answer on
//!   443, and a stray port on a trusted name (a dev server, a debug endpoint) should
//!   not become a target by accident.
//!
//! Hosts compare in their ASCII (punycode), lower-case form, as the URL parser writes
//! them, and the caller redirects to that parsed form, never to the raw input.

pub mod cookie_domain;
pub mod original;

use url::{Host, Url};

/// Longer than any address a proxy sends; refused before parsing.
const MAX_LEN: usize = 2048;

pub fn allowed_return(rd: &str, public: &Url, allowed_domains: &[String]) -> Option<Url> {
    // The URL parser drops tabs and newlines and reads `\` as `/`; browsers and proxies
    // do not all agree. Nothing legitimate needs them unencoded: refuse.
    if rd.len() > MAX_LEN
        || rd
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'\\')
    {
        return None;
    }
    let url = Url::parse(rd).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    if url.origin() == public.origin() {
        return Some(url);
    }
    let scheme_ok = url.scheme() == "https" || public.scheme() == "http";
    // A trailing dot names the same host to DNS but another origin to browsers (and
    // to cookies): not a form anyone configures.
    let host = url.host_str().filter(|h| !h.ends_with('.'))?;
    let listed = allowed_domains.iter().any(|entry| {
        let (domain, port) = split_port(entry);
        let host_ok = host == domain
            || host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.ends_with('.'));
        // `Url::port` is None for the scheme's default port, written or not.
        host_ok && url.port() == port
    });
    (scheme_ok && listed).then_some(url)
}

/// An entry of `forward_auth_allowed_domains` in the form `allowed_return` compares:
/// the ASCII lower-case name without leading or trailing dots, and `:port` when one is
/// given. None when it is not a domain name (or IPv4 address) with an optional port.
pub fn normalize_domain(entry: &str) -> Option<String> {
    let entry = entry.trim().trim_start_matches('.');
    let (name, port) = match entry.rsplit_once(':') {
        Some((name, port)) => (name, Some(port.parse::<u16>().ok().filter(|p| *p != 0)?)),
        None => (entry, None),
    };
    let name = match Host::parse(name.trim_end_matches('.')).ok()? {
        Host::Domain(d) if !d.is_empty() => d,
        Host::Ipv4(ip) => ip.to_string(),
        _ => return None,
    };
    Some(match port {
        Some(p) => format!("{name}:{p}"),
        None => name,
    })
}

fn split_port(entry: &str) -> (&str, Option<u16>) {
    match entry.rsplit_once(':') {
        Some((name, port)) => match port.parse() {
            Ok(p) => (name, Some(p)),
            Err(_) => (entry, None),
        },
        None => (entry, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(public: &str, allowed: &[&str], ok: &[&str], bad: &[&str]) {
        let public = Url::parse(public).unwrap();
        let allowed: Vec<String> = allowed.iter().map(|d| d.to_string()).collect();
        for rd in ok {
            assert!(
                allowed_return(rd, &public, &allowed).is_some(),
                "{rd} should be allowed"
            );
        }
        for rd in bad {
            assert!(
                allowed_return(rd, &public, &allowed).is_none(),
                "{rd} should be refused"
            );
        }
    }

    #[test]
    fn only_listed_domains_and_their_subdomains() {
        check(
            "https://auth.example.com",
            &["example.com"],
            &[
                "https://app.example.com/path?q=1",
                "https://example.com/",
                "https://deep.app.example.com/",
                "https://auth.example.com/x",
                "https://APP.Example.COM/",
                "https://app.example.com:443/",
            ],
            &[
                "https://evil.com/",
                "https://example.com.evil.com/",
                "https://evilexample.com/",
                "javascript:alert(1)",
                "https://user:pw@app.example.com/",
                "//app.example.com/",
                "/relative",
                "ftp://app.example.com/",
                "data:text/html,hi",
            ],
        );
        check(
            "https://auth.example.com",
            &[],
            &["https://auth.example.com/x"],
            &["https://app.example.com/"],
        );
    }

    #[test]
    fn our_own_host_only_on_the_public_urls_origin() {
        check(
            "http://localhost:8080",
            &[],
            &[
                "http://localhost:8080/x",
                "HTTP://LOCALHOST:8080/x",
                "http://localhost:8080/a?rd=http://evil.com/#f",
            ],
            &[
                "http://localhost:1/x",
                "http://localhost/x",
                "https://localhost:8080/x",
                "http://localhost:8080@evil.com/",
                "http://localhost:8080\\@evil.com/",
                "http://evil.com\\@localhost:8080/",
                "http://localhost:8080\\evil.com",
                "//localhost:8080/x",
                "http://localhost.:8080/x",
                "http://127.0.0.1:8080/x",
                "http://localhost:8080\t@evil.com/",
                " http://localhost:8080/x",
            ],
        );
        check(
            "https://auth.example.com",
            &[],
            &[
                "https://auth.example.com:443/x",
                "https://auth.example.com/x",
            ],
            &[
                "http://auth.example.com/x",
                "https://auth.example.com:8443/x",
                "https://auth.example.com./x",
                "wss://auth.example.com/x",
            ],
        );
    }

    #[test]
    fn listed_domains_need_https_unless_we_are_on_http_ourselves() {
        check(
            "https://auth.example.com",
            &["example.com"],
            &["https://app.example.com/"],
            &[
                "http://app.example.com/",
                "http://example.com/",
                "https://app.example.com:8443/",
                "https://app.example.com./",
            ],
        );
        // A deployment that is plain http everywhere (a lab, a LAN) may return over http.
        check(
            "http://auth.lan:8080",
            &["lan"],
            &["http://app.lan/", "https://app.lan/"],
            &["http://app.lan:8080/", "http://evillan/"],
        );
    }

    #[test]
    fn a_listed_port_is_the_only_other_port() {
        check(
            "https://auth.example.com",
            &["example.com:8443"],
            &["https://app.example.com:8443/"],
            &["https://app.example.com/", "https://app.example.com:9443/"],
        );
    }

    #[test]
    fn international_names_compare_in_their_ascii_form() {
        check(
            "https://auth.example.com",
            &["xn--bcher-kva.example", "example.com"],
            &[
                "https://bücher.example/",
                "https://shop.BÜCHER.example/",
                "https://xn--bcher-kva.example/",
            ],
            // Cyrillic "е" and "а": look alike, are other names.
            &["https://\u{435}xample.com/", "https://ex\u{430}mple.com/"],
        );
        // Listed in Unicode: the same.
        check(
            "https://auth.example.com",
            &[&normalize_domain("Bücher.Example").unwrap()],
            &["https://shop.xn--bcher-kva.example/"],
            &["https://bucher.example/"],
        );
    }

    #[test]
    fn configured_entries_are_normalized_or_refused() {
        assert_eq!(
            normalize_domain(".Example.COM").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            normalize_domain(" example.com. ").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            normalize_domain("Example.com:8443").as_deref(),
            Some("example.com:8443")
        );
        assert_eq!(
            normalize_domain("Bücher.example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        for bad in [
            "",
            ".",
            "evil.com/x",
            "a b",
            "example.com:0",
            "example.com:x",
            "[::1]",
        ] {
            assert_eq!(normalize_domain(bad), None, "{bad}");
        }
    }

    #[test]
    fn oversized_input_is_refused() {
        let long = format!("https://auth.example.com/{}", "a".repeat(3000));
        check("https://auth.example.com", &[], &[], &[&long]);
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Return addresses built from the parts that confuse URL parsers: odd
        /// schemes, user info, look-alike hosts, ports, and paths that smuggle a host.
        fn address() -> impl Strategy<Value = String> {
            let scheme = prop_oneof![
                Just("https://"),
                Just("http://"),
                Just("//"),
                Just("HTTPS://"),
                Just("javascript:"),
                Just("https:/"),
                Just("https:\\\\"),
                Just(""),
            ];
            let user = prop_oneof![
                Just(""),
                Just("user@"),
                Just("a:b@"),
                Just("app.example.com@")
            ];
            let host = prop_oneof![
                Just("auth.example.com"),
                Just("app.example.com"),
                Just("example.com"),
                Just("EXAMPLE.com"),
                Just("example.com."),
                Just("example.com.evil.net"),
                Just("evilexample.com"),
                Just("localhost"),
                Just("127.0.0.1"),
                Just("[::1]"),
                Just("ex%61mple.com"),
                Just("xn--exmple-cua.com"),
                Just("exämple.com"),
                Just("app.example.com\u{3002}evil.net"),
                Just(""),
            ];
            let port = prop_oneof![
                Just(""),
                Just(":443"),
                Just(":8443"),
                Just(":1"),
                Just(":80"),
                Just(":"),
                Just(":99999")
            ];
            let path = prop_oneof![
                Just(""),
                Just("/"),
                Just("/x?y=1#z"),
                Just("@evil.net/"),
                Just("\\@evil.net"),
                Just("/%2F%2Fevil.net"),
                Just("#@evil.net"),
                Just("?@evil.net"),
                Just("\t/x"),
            ];
            (scheme, user, host, port, path).prop_map(|(a, b, c, d, e)| format!("{a}{b}{c}{d}{e}"))
        }

        fn check(rd: &str) {
            let public = Url::parse("https://auth.example.com").unwrap();
            let allowed = vec![normalize_domain("example.com").unwrap()];
            let Some(url) = allowed_return(rd, &public, &allowed) else {
                return;
            };
            assert!(
                url.username().is_empty() && url.password().is_none(),
                "{rd}: user info"
            );
            if url.origin() == public.origin() {
                return;
            }
            let host = url.host_str().unwrap_or_default();
            assert_eq!(url.scheme(), "https", "{rd}");
            assert!(
                host == "example.com" || host.ends_with(".example.com"),
                "{rd} went to {host}"
            );
            assert_eq!(url.port(), None, "{rd}: another port");
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn an_accepted_return_is_on_an_allowed_origin(rd in address()) {
                check(&rd);
            }

            #[test]
            fn any_string_is_judged_without_panicking(rd in any::<String>()) {
                check(&rd);
            }
        }
    }
}
