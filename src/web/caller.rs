//! Who is calling: the client IP (forwarding headers are believed only from configured
//! trusted proxies) and the user agent.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::config::Config;

/// The one answer to "who is the client" (rate limits, audit, sessions, who may scrape
/// `/metrics`): the socket peer, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not one of ours. IPv4-mapped IPv6 addresses
/// (a dual-stack listener) compare as the IPv4 address they carry.
pub fn client_ip(req: &HttpRequest, config: &Config) -> IpAddr {
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_canonical())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    if !config.trusted_proxies.contains(&peer) {
        return peer;
    }
    // Walk X-Forwarded-For from the right, skipping our own proxies.
    let chain: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
        .collect();
    chain
        .into_iter()
        .rev()
        .find(|ip| !config.trusted_proxies.contains(ip))
        .unwrap_or(peer)
}

pub fn user_agent(req: &HttpRequest) -> String {
    req.headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(512)
        .collect()
}

/// "Firefox on Linux" from a user agent, for the sessions page.
pub fn describe_browser(ua: &str) -> String {
    if ua.is_empty() {
        return "Unknown browser".into();
    }
    match woothee::parser::Parser::new().parse(ua) {
        Some(r) if r.name != "UNKNOWN" => {
            let os = if r.os == "UNKNOWN" { "" } else { r.os };
            if os.is_empty() {
                r.name.to_string()
            } else {
                format!("{} on {}", r.name, os)
            }
        }
        _ => ua.chars().take(60).collect(),
    }
}
