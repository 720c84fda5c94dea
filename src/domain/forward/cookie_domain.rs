//! Session cookies for a parent domain. With `cookie_domains = ["example.com"]` the
//! session cookie is written with `Domain=example.com`, so a browser signed in at
//! `auth.example.com` also presents it to `app.example.com`, where the proxy passes it
//! on to forward auth. That is what makes forward auth work for apps on hosts of their
//! own.
//!
//! Several domains: portcullis answers under each at its own sign-in address (its
//! "portal"), written `example.org=https://auth.example.org`; an entry without one uses
//! the public URL, which must then lie under it. The cookie's domain is chosen per
//! request, by the host the browser asked for, so each domain gets a cookie of its own.

use url::Url;

use super::normalize_domain;

/// One configured cookie domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieDomain {
    /// ASCII lower case, no port.
    pub domain: String,
    /// Where users of this domain sign in; None: the public URL.
    pub portal: Option<Url>,
}

impl CookieDomain {
    /// `example.com` or `example.org=https://auth.example.org`.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let (name, portal) = match entry.split_once('=') {
            Some((name, portal)) => (name, Some(portal.trim())),
            None => (entry, None),
        };
        let domain = normalize_domain(name)
            .filter(|d| !d.contains(':'))
            .ok_or_else(|| format!("{name} is not a domain name (without a port)"))?;
        // A cookie for a public suffix (`com`) is refused by browsers, and one label
        // is almost always a mistake for a name like that.
        if !domain.contains('.') {
            return Err(format!(
                "{domain} has one label; name the registered domain (e.g. example.com)"
            ));
        }
        let portal = match portal {
            None => None,
            Some(p) => {
                let url = Url::parse(p).map_err(|e| format!("{p}: {e}"))?;
                let host_ok = url.host_str().is_some_and(|h| under(h, &domain));
                if !matches!(url.scheme(), "http" | "https") || !host_ok {
                    return Err(format!(
                        "{p} must be an http(s) address on {domain} or a subdomain of it"
                    ));
                }
                if url.path() != "/" || url.query().is_some() {
                    return Err(format!("{p} must be an origin, without a path"));
                }
                Some(url)
            }
        };
        Ok(Self { domain, portal })
    }

    /// Whether `host` (without port) is this domain or under it.
    pub fn covers(&self, host: &str) -> bool {
        under(&host.to_ascii_lowercase(), &self.domain)
    }
}

/// The cookie domain a request to `host` (a `Host` header: name and optional port)
/// should set; None for a host under none of them (the cookie stays host-only).
pub fn for_host<'a>(domains: &'a [CookieDomain], host: &str) -> Option<&'a CookieDomain> {
    let name = strip_port(host);
    domains.iter().find(|d| d.covers(name))
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host; // an IPv6 literal: never under a domain
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn under(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|sub| sub.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_with_and_without_a_portal() {
        let d = CookieDomain::parse(" .Example.COM ").unwrap();
        assert_eq!(d.domain, "example.com");
        assert_eq!(d.portal, None);
        let d = CookieDomain::parse("example.org=https://auth.example.org").unwrap();
        assert_eq!(d.domain, "example.org");
        assert_eq!(d.portal.unwrap().as_str(), "https://auth.example.org/");
        for bad in [
            "",
            "com",
            "example.com:443",
            "example.org=https://auth.example.com",
            "example.org=https://evilexample.org",
            "example.org=ftp://auth.example.org",
            "example.org=https://auth.example.org/login",
            "example.org=not a url",
        ] {
            assert!(CookieDomain::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_domain_is_chosen_by_the_host_asked_for() {
        let ds = vec![
            CookieDomain::parse("example.com").unwrap(),
            CookieDomain::parse("example.org=https://auth.example.org").unwrap(),
        ];
        assert_eq!(
            for_host(&ds, "auth.example.com").unwrap().domain,
            "example.com"
        );
        assert_eq!(
            for_host(&ds, "AUTH.example.com:8443").unwrap().domain,
            "example.com"
        );
        assert_eq!(for_host(&ds, "example.org").unwrap().domain, "example.org");
        assert_eq!(for_host(&ds, "evilexample.com"), None);
        assert_eq!(for_host(&ds, "example.com.evil.net"), None);
        assert_eq!(for_host(&ds, "localhost:8080"), None);
        assert_eq!(for_host(&ds, "[::1]:8080"), None);
    }
}
