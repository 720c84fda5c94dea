//! `policy check`: what forward auth decides for a user and a request, and why.

use clap::Subcommand;

use crate::clock::Clock;
use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print what forward auth decides for this user and request, and which rule decides.
    Check {
        /// The email address of the account making the request.
        #[arg(long)]
        email: String,
        /// The address asked for, as the browser had it (https://app.example.com/admin).
        #[arg(long)]
        url: String,
        /// The request's HTTP method (GET, POST, …).
        #[arg(long, value_name = "M", default_value = "GET")]
        method: String,
        /// The client's IP address, for rules with networks.
        #[arg(long, default_value = "127.0.0.1")]
        ip: std::net::IpAddr,
    },
}

/// `policy check`: the decision, the rule and why, one `key=value` per line.
pub async fn run_policy(config: &Config, cmd: PolicyCommand) -> anyhow::Result<String> {
    let PolicyCommand::Check {
        email,
        url,
        method,
        ip,
    } = cmd;
    let db = crate::startup::open_database(config)?;
    let access = crate::auth::access::Access::new(
        db.clone(),
        config.admin_requires_second_factor,
        crate::auth::oauth::cache::BackChannelCache::disabled(),
    );
    let policies = crate::startup::policies(
        config,
        &db,
        &Clock::system(),
        crate::auth::oauth::cache::BackChannelCache::disabled(),
    )
    .await?;
    let e = policies
        .test(&access, Some(&email), &url, &method, ip)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(format!(
        "decision={}\nrule={}\nwhy={}",
        e.decision, e.rule, e.why
    ))
}
