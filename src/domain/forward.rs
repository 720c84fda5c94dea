//! Forward auth (`/auth/forward`): where a reverse proxy may send a user back to after
//! signing in. Only http(s) URLs on this service's own host or on a configured domain
//! (or a subdomain of one), so the endpoint is never an open redirect.

use url::Url;

pub fn allowed_return(rd: &str, public: &Url, allowed_domains: &[String]) -> Option<Url> {
    if rd.len() > 2048 {
        return None;
    }
    let url = Url::parse(rd).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let own = public
        .host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case(&host));
    let listed = allowed_domains
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")));
    (own || listed).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_domains_and_their_subdomains() {
        let public = Url::parse("https://auth.example.com").unwrap();
        let allowed = vec!["example.com".to_string()];
        for ok in [
            "https://app.example.com/path?q=1",
            "https://example.com/",
            "http://deep.app.example.com/",
            "https://auth.example.com/x",
        ] {
            assert!(allowed_return(ok, &public, &allowed).is_some(), "{ok}");
        }
        for bad in [
            "https://evil.com/",
            "https://example.com.evil.com/",
            "https://evilexample.com/",
            "javascript:alert(1)",
            "https://user:pw@app.example.com/",
            "//app.example.com/",
            "/relative",
            "ftp://app.example.com/",
        ] {
            assert!(allowed_return(bad, &public, &allowed).is_none(), "{bad}");
        }
        assert!(allowed_return("https://app.example.com/", &public, &[]).is_none());
    }
}
