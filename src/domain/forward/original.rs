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
    pub url: Url,
    /// Upper case, e.g. `GET`.
    pub method: String,
    pub style: Style,
}

/// Longer than any address a proxy sends; refused before parsing.
const MAX_LEN: usize = 4096;

/// The original request, when the headers name one completely and well. Headers that
/// name one badly (a relative URL, an unknown scheme, a host with a path in it) are
/// treated as absent: the proxy then gets a plain 401, never a redirect somewhere odd.
pub fn original_request(h: &ProxyHeaders) -> Option<Original> {
    if let Some(raw) = h.original_url {
        return Some(Original {
            url: absolute(raw)?,
            method: method(h.original_method)?,
            style: Style::AuthRequest,
        });
    }
    let proto = first(h.forwarded_proto?).to_ascii_lowercase();
    let host = first(h.forwarded_host?);
    let uri = h.forwarded_uri.unwrap_or("/");
    if !matches!(proto.as_str(), "http" | "https")
        || host.is_empty()
        || host.contains(['/', '\\', '@', '?', '#'])
        || !uri.starts_with('/')
    {
        return None;
    }
    // `//x` is a path here (the host came in its own header), but after `https://host`
    // it would read as the start of another address: one slash is what the app serves.
    let uri = format!("/{}", uri.trim_start_matches('/'));
    let url = absolute(&format!("{proto}://{host}{uri}"))?;
    Some(Original {
        url,
        method: method(h.forwarded_method)?,
        style: Style::Redirect,
    })
}

/// The first of a comma-separated list (a chain of proxies appends).
fn first(v: &str) -> &str {
    v.split(',').next().unwrap_or("").trim()
}

fn absolute(raw: &str) -> Option<Url> {
    let raw = raw.trim();
    if raw.len() > MAX_LEN || raw.bytes().any(|b| b.is_ascii_control() || b == b'\\') {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    (matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.username().is_empty()
        && url.password().is_none())
    .then_some(url)
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
    fn nginx_sends_the_whole_url_and_keeps_every_query_parameter() {
        let o = original_request(&ProxyHeaders {
            original_url: Some("https://app.example.com/search?q=alpha&page=2"),
            original_method: Some("post"),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            o.url.as_str(),
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
            o.url.as_str(),
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
        assert_eq!(o.url.as_str(), "https://app.example.com/");
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
        assert_eq!(o.url.as_str(), "https://app.example.com/evil.com/x");
    }
}
