//! The request a proxy asks about. nginx's `auth_request` sends it as `X-Original-URL`
//! and `X-Original-Method` (set in our documented config); Traefik's ForwardAuth and
//! Caddy's `forward_auth` send `X-Forwarded-Proto`, `-Host`, `-Uri` and `-Method`.
//! These headers are believed only from a trusted proxy (the caller checks): anyone
//! else could name any address and have us redirect there.
//!
//! The two families also want different answers when the user must sign in: nginx
//! cannot follow a redirect from an auth subrequest (any answer but 2xx, 401 and 403
//! becomes a 500), so it gets 401 with the sign-in address in `Location`, which the
//! documented `error_page 401 =302 $redirect` hands to the browser; Traefik and Caddy
//! pass our answer to the browser as it is, so they get the redirect itself.

use url::Url;

/// The proxy headers as received (each the first value, if any).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProxyHeaders<'a> {
    pub original_url: Option<&'a str>,
    pub original_method: Option<&'a str>,
    pub forwarded_proto: Option<&'a str>,
    pub forwarded_host: Option<&'a str>,
    pub forwarded_uri: Option<&'a str>,
    pub forwarded_method: Option<&'a str>,
}

/// How the proxy wants to be told "sign in first".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// nginx `auth_request`: 401, with the sign-in address in `Location`.
    AuthRequest,
    /// Traefik, Caddy, and `?rd=`: the redirect itself.
    Redirect,
}

/// The request behind the subrequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Original {
    /// The address, checked as [`original_request`] says; it parses as a [`Url`].
    raw: String,
    /// As [`Url::host_str`] gives it: lower case, without the port.
    pub host: String,
    /// As received up to the query; the rules normalise it (`domain::access::path`),
    /// which gives the same result for it as for [`Url::path`].
    pub path: String,
    /// Upper case, e.g. `GET`.
    pub method: String,
    pub style: Style,
}

impl Original {
    /// From an address already parsed.
    pub fn from_url(url: &Url, method: &str, style: Style) -> Self {
        Self {
            raw: url.as_str().to_string(),
            host: url.host_str().unwrap_or_default().to_string(),
            path: url.path().to_string(),
            method: method.to_string(),
            style,
        }
    }

    /// The address, parsed: needed only for an answer that sends the browser
    /// somewhere (most answers are a yes, which needs the host and path alone).
    pub fn url(&self) -> Option<Url> {
        Url::parse(&self.raw).ok()
    }
}

/// Longer than any address a proxy sends; refused before parsing.
const MAX_LEN: usize = 4096;

/// The original request, when the headers name one completely and well. Headers that
/// name one badly (a relative URL, an unknown scheme, a host with a path in it) are
/// treated as absent: the proxy then gets a plain 401, never a redirect somewhere odd.
pub fn original_request(h: &ProxyHeaders) -> Option<Original> {
    if let Some(raw) = h.original_url {
        return checked(raw.trim(), method(h.original_method)?, Style::AuthRequest);
    }
    let proto = first(h.forwarded_proto?);
    let proto = ["http", "https"]
        .into_iter()
        .find(|p| p.eq_ignore_ascii_case(proto))?;
    let host = first(h.forwarded_host?);
    let uri = h.forwarded_uri.unwrap_or("/");
    if host.is_empty() || host.contains(['/', '\\', '@', '?', '#']) || !uri.starts_with('/') {
        return None;
    }
    // `//x` is a path here (the host came in its own header), but after `https://host`
    // it would read as the start of another address: one slash is what the app serves.
    let path = uri.trim_start_matches('/');
    let mut raw = String::with_capacity(proto.len() + host.len() + path.len() + 4);
    for part in [proto, "://", host, "/", path] {
        raw.push_str(part);
    }
    checked(&raw, method(h.forwarded_method)?, Style::Redirect)
}

/// The first of a comma-separated list (a chain of proxies appends).
fn first(v: &str) -> &str {
    v.split(',').next().unwrap_or("").trim()
}

/// `raw` as an [`Original`] if it is an absolute http(s) address with a host and no
/// credentials. A proxy asks before every request to the sites it protects, and
/// nearly every address has the plain shape [`plain`] reads without a URL parser;
/// any other goes through the parser.
fn checked(raw: &str, method: String, style: Style) -> Option<Original> {
    if raw.len() > MAX_LEN || raw.bytes().any(|b| b.is_ascii_control() || b == b'\\') {
        return None;
    }
    if let Some((host, path)) = plain(raw) {
        return Some(Original {
            raw: raw.to_string(),
            host,
            path: path.to_string(),
            method,
            style,
        });
    }
    let url = Url::parse(raw).ok()?;
    (matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.username().is_empty()
        && url.password().is_none())
    .then(|| Original::from_url(&url, &method, style))
}

/// The host (lower case) and path of `scheme://host[:port]/path[?query]` when every
/// part has the common shape whose meaning the URL parser would not change: a DNS
/// name of letters, digits, `-` and `.` whose last label starts with a letter (not
/// an IP address, not punycode), a port number, a path of unreserved and sub-delim
/// characters and `%`, a query without a fragment. Anything else: `None`, and the
/// parser decides. A property test holds this to what the parser says.
fn plain(raw: &str) -> Option<(String, &str)> {
    let (scheme, rest) = raw.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")) {
        return None;
    }
    let slash = rest.find('/')?;
    let (authority, path_query) = rest.split_at(slash);
    let (host, port) = match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let port_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| n <= 65535)
    };
    if !port.is_none_or(port_ok) {
        return None;
    }
    let labels = host.strip_suffix('.').unwrap_or(host);
    let plain_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && l.get(2..4).is_none_or(|d| d != "--")
    };
    if host.len() > 253
        || !labels.split('.').all(plain_label)
        || !labels
            .rsplit('.')
            .next()
            .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()))
    {
        return None;
    }
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    // The parser resolves dot segments (`..`, `%2e%2e`) before the rules decode, and
    // the rules decode before they resolve: `/a%2fa/..` is `/` to one, `/a/` to the
    // other. Such a path goes to the parser, whose reading the rules always had.
    let path_ok = !path.split('/').any(dot_segment)
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b));
    let query_ok = query.is_none_or(|q| q.bytes().all(|b| b.is_ascii_graphic() && b != b'#'));
    (path_ok && query_ok).then(|| (host.to_ascii_lowercase(), path))
}

/// `.` or `..`, each dot written as itself or as `%2e` (either case). Read without
/// allocating: every segment of every address a proxy asks about passes here.
fn dot_segment(seg: &str) -> bool {
    let mut rest = seg.as_bytes();
    let mut dots = 0;
    while !rest.is_empty() {
        rest = match rest {
            [b'.', tail @ ..] => tail,
            [b'%', b'2', e, tail @ ..] if e.eq_ignore_ascii_case(&b'e') => tail,
            _ => return false,
        };
        dots += 1;
        if dots > 2 {
            return false;
        }
    }
    dots > 0
}

/// A method token (RFC 9110), upper-cased; GET when the proxy sends none.
fn method(m: Option<&str>) -> Option<String> {
    let m = m.map(str::trim).unwrap_or("GET");
    (!m.is_empty() && m.len() <= 32 && m.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| m.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_read_in_any_spelling() {
        for seg in [".", "..", "%2e", "%2E", ".%2e", "%2e.", "%2E%2e"] {
            assert!(dot_segment(seg), "{seg}");
        }
        for seg in [
            "",
            "...",
            "a",
            ".a",
            "%2e%2e%2e",
            "%2",
            "%2f",
            "%20",
            "..%2f",
        ] {
            assert!(!dot_segment(seg), "{seg}");
        }
    }

    #[test]
    fn nginx_sends_the_whole_url_and_keeps_every_query_parameter() {
        let o = original_request(&ProxyHeaders {
            original_url: Some("https://app.example.com/search?q=alpha&page=2"),
            original_method: Some("post"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            o.url().unwrap().as_str(),
            "https://app.example.com/search?q=alpha&page=2"
        );
        assert_eq!(o.method, "POST");
        assert_eq!(o.style, Style::AuthRequest);
    }

    #[test]
    fn traefik_and_caddy_send_the_parts() {
        let o = original_request(&ProxyHeaders {
            forwarded_proto: Some("https"),
            forwarded_host: Some("app.example.com:8443"),
            forwarded_uri: Some("/a/b?q=alpha&page=2"),
            forwarded_method: Some("GET"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            o.url().unwrap().as_str(),
            "https://app.example.com:8443/a/b?q=alpha&page=2"
        );
        assert_eq!(o.style, Style::Redirect);
        // A chain of proxies: the first (the client-facing one) counts.
        let o = original_request(&ProxyHeaders {
            forwarded_proto: Some("https, http"),
            forwarded_host: Some("app.example.com, internal"),
            forwarded_uri: None,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(o.url().unwrap().as_str(), "https://app.example.com/");
        assert_eq!(o.method, "GET");
    }

    #[test]
    fn malformed_headers_name_no_request() {
        let bad = [
            ProxyHeaders {
                original_url: Some("/relative"),
                ..Default::default()
            },
            ProxyHeaders {
                original_url: Some("javascript:alert(1)"),
                ..Default::default()
            },
            ProxyHeaders {
                original_url: Some("https://user:pw@app.example.com/"),
                ..Default::default()
            },
            ProxyHeaders {
                original_url: Some("https://app.example.com/"),
                original_method: Some("GE T"),
                ..Default::default()
            },
            ProxyHeaders {
                forwarded_proto: Some("ftp"),
                forwarded_host: Some("app.example.com"),
                forwarded_uri: Some("/"),
                ..Default::default()
            },
            ProxyHeaders {
                forwarded_proto: Some("https"),
                forwarded_host: Some("evil.com/x"),
                forwarded_uri: Some("/"),
                ..Default::default()
            },
            ProxyHeaders {
                forwarded_proto: Some("https"),
                forwarded_host: Some("app.example.com@evil.com"),
                forwarded_uri: Some("/"),
                ..Default::default()
            },
            ProxyHeaders {
                forwarded_proto: Some("https"),
                forwarded_host: Some("app.example.com"),
                forwarded_uri: Some("x"),
                ..Default::default()
            },
            ProxyHeaders {
                forwarded_host: Some("app.example.com"),
                forwarded_uri: Some("/"),
                ..Default::default()
            },
            ProxyHeaders::default(),
        ];
        for h in bad {
            assert_eq!(original_request(&h), None, "{h:?}");
        }
    }

    /// A path that starts with `//` stays on the host the proxy named.
    #[test]
    fn a_double_slash_path_stays_on_the_named_host() {
        let o = original_request(&ProxyHeaders {
            forwarded_proto: Some("https"),
            forwarded_host: Some("app.example.com"),
            forwarded_uri: Some("//evil.com/x"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            o.url().unwrap().as_str(),
            "https://app.example.com/evil.com/x"
        );
    }

    /// The shortcut that skips the URL parser reads every address it takes exactly
    /// as the parser does: the same host, and a path the rules normalise alike.
    mod plain_reads_as_the_parser {
        use super::super::plain;
        use crate::domain::access::path::normalize;
        use proptest::prelude::*;
        use url::Url;

        fn piece() -> impl Strategy<Value = String> {
            prop::sample::select(vec![
                "a", "B", "0", "9", "-", ".", "..", "%2e", "%2E", "%2f", "%41", "%zz", "%", "/",
                "//", "\\", "?", "#", ":", "@", "xn--", "--", "0x", "[", "]", " ", "~", "\u{e9}",
                "'", "+", "=", "&", ";", "|", "^", "`", "{", "\"",
            ])
            .prop_map(str::to_string)
        }

        fn part() -> impl Strategy<Value = String> {
            prop::collection::vec(piece(), 0..8).prop_map(|v| v.concat())
        }

        /// Mostly DNS-like labels (so that the shortcut is taken often), some odd.
        fn host() -> impl Strategy<Value = String> {
            let label = prop_oneof![
                4 => "[a-zA-Z0-9-]{1,6}",
                1 => part(),
            ];
            (prop::collection::vec(label, 1..4), any::<bool>())
                .prop_map(|(l, dot)| l.join(".") + if dot { "." } else { "" })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(100000))]
            #[test]
            fn same_host_and_path(
                scheme in prop::sample::select(vec!["https", "HTTP", "ftp", "http"]),
                host in host(),
                port in prop::sample::select(vec!["", ":", ":443", ":8080", ":99999", ":0x1"]),
                path in prop_oneof![3 => "[a-zA-Z0-9/.%~:@!$&'()*+,;=-]{0,12}", 1 => part()],
                query in prop::option::of(prop_oneof!["[ -~]{0,8}", part()]),
            ) {
                let raw = format!(
                    "{scheme}://{host}{port}/{path}{}",
                    query.map(|q| format!("?{q}")).unwrap_or_default()
                );
                if let Some((h, p)) = plain(&raw) {
                    let url = Url::parse(&raw).expect("the parser takes what the shortcut takes");
                    prop_assert_eq!(url.host_str(), Some(h.as_str()), "{}", raw);
                    prop_assert_eq!(normalize(p), normalize(url.path()), "{}", raw);
                    prop_assert!(url.username().is_empty() && url.password().is_none());
                }
            }
        }

        #[test]
        fn the_common_shapes_take_the_shortcut() {
            for raw in [
                "https://app.example.com/",
                "https://App.Example.com:8443/reports/2026/q3?page=2&q=a%20b",
                "http://wiki.internal./a/b.html",
            ] {
                assert!(plain(raw).is_some(), "{raw}");
            }
            for raw in [
                "https://127.0.0.1/",
                "https://xn--bcher-kva.example/",
                "https://app.example.com/a b",
                "https://app.example.com",
                "https://[::1]/",
                "https://app.example.com/a%2fa/..",
                "https://app.example.com/a/%2E./b",
            ] {
                assert!(plain(raw).is_none(), "{raw}");
            }
        }
    }
}
