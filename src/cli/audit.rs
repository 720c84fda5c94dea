//! `audit verify` and `audit checkpoint`: the hash chain checked, a signed checkpoint printed.

use clap::Subcommand;

use crate::auth::audit::AuditLog;
use crate::clock::Clock;
use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; exits non-zero naming the first bad event.
    Verify {
        /// A checkpoint printed by `audit checkpoint` or the server's log: also fail
        /// when the log no longer reaches its event or the hash there differs
        /// (default: check the chain alone).
        #[arg(long, value_name = "CHECKPOINT")]
        expect: Option<String>,
    },
    /// Print a signed checkpoint of the audit log (checkpoint=…) and the public key
    /// that checks it (public_key=…), for keeping outside the database.
    Checkpoint,
}

/// `Ok` with a report when the chain is intact, `Err` naming the first bad event.
pub async fn run_audit(config: &Config, cmd: AuditCommand) -> anyhow::Result<String> {
    use crate::auth::audit::checkpoint::{Checkpoint, Signer};
    let master = crate::master_key::MasterKey::load_or_create(&config.secret_key_file)?;
    let signer = Signer::new(&master);
    let db = crate::startup::open_database_with(config, &master)?;
    match cmd {
        AuditCommand::Checkpoint => {
            let now = Clock::system().now();
            let taken = db
                .run(move |c| {
                    crate::auth::audit::checkpoint::take(c, &signer, now)
                        .map_err(crate::db::DbError::from)
                        .map(|r| r.map(|cp| (cp, signer.public_key())))
                })
                .await?;
            match taken {
                Ok((cp, public_key)) => Ok(format!("checkpoint={cp}\npublic_key={public_key}")),
                Err(refusal) => anyhow::bail!("{refusal}"),
            }
        }
        AuditCommand::Verify { expect } => {
            let expect = match expect {
                Some(text) => {
                    let cp: Checkpoint =
                        text.parse().map_err(|e| anyhow::anyhow!("--expect: {e}"))?;
                    if !signer.signed(&cp) {
                        anyhow::bail!(
                            "--expect: the checkpoint's signature is not valid for this server's key: forged or altered"
                        );
                    }
                    Some(cp)
                }
                None => None,
            };
            let log = AuditLog::new(db, Clock::system());
            let verdict = match expect {
                Some(cp) => log.verify_expecting(cp).await?,
                None => log.verify().await?,
            };
            match verdict {
                crate::auth::audit::ChainVerdict::Intact { events } => {
                    Ok(format!("audit log intact: {events} events verified"))
                }
                crate::auth::audit::ChainVerdict::Broken { id, problem } => {
                    anyhow::bail!("audit log altered at event {id}: {problem}")
                }
            }
        }
    }
}
