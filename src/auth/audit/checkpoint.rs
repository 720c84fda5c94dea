//! Signed checkpoints of the audit chain: an anchor kept outside the database. A
//! checkpoint names the chain's newest event, its hash and the time, signed with an
//! Ed25519 key derived from the master key. Whoever keeps checkpoints (a log shipped
//! elsewhere, a ticket, a printout) can later show with `portcullis audit verify
//! --expect` that the log still reaches that event with that hash: deleting the newest
//! events, which no chain can reveal from inside, is then caught. A database writer
//! without the master key can neither forge a checkpoint nor a link after one.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::db::AnyConnection;
use crate::master_key::MasterKey;

/// What the signature covers, after a fixed context string so that no other
/// signature made with this key can pass for a checkpoint.
fn message(id: i64, hash: &str, time: i64) -> Vec<u8> {
    format!("portcullis audit checkpoint v1\n{id}\n{hash}\n{time}").into_bytes()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub id: i64,
    pub hash: String,
    pub time: i64,
    signature: Vec<u8>,
}

impl std::fmt::Display for Checkpoint {
    /// `v1.<event id>.<chain hash>.<unix time>.<signature, base64url>`: one token, no
    /// quoting needed in a shell or a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "v1.{}.{}.{}.{}",
            self.id,
            self.hash,
            self.time,
            URL_SAFE_NO_PAD.encode(&self.signature)
        )
    }
}

impl std::str::FromStr for Checkpoint {
    type Err = String;

    /// Accepts the token, or the whole `checkpoint=…` line the CLI prints.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let s = s.strip_prefix("checkpoint=").unwrap_or(s);
        let bad = || "not a checkpoint (expected v1.<id>.<hash>.<time>.<signature>)".to_string();
        let parts: Vec<&str> = s.split('.').collect();
        let [version, id, hash, time, sig] = parts[..] else {
            return Err(bad());
        };
        if version != "v1" {
            return Err(bad());
        }
        let id: i64 = id.parse().map_err(|_| bad())?;
        let time: i64 = time.parse().map_err(|_| bad())?;
        if id <= 0
            || hash.len() != 64
            || !hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        let signature = URL_SAFE_NO_PAD.decode(sig).map_err(|_| bad())?;
        if signature.len() != 64 {
            return Err(bad());
        }
        Ok(Self {
            id,
            hash: hash.to_string(),
            time,
            signature,
        })
    }
}

/// The checkpoint key pair, derived from the master key (every instance has the same).
pub struct Signer {
    pair: Ed25519KeyPair,
}

impl Signer {
    pub fn new(master: &MasterKey) -> Self {
        let seed: [u8; 32] = master.derive("audit-checkpoint-ed25519");
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .unwrap_or_else(|_| unreachable!("every 32-byte seed is an Ed25519 key"));
        Self { pair }
    }

    /// The public key (raw 32 bytes, base64url): what checks a checkpoint without the
    /// master key.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref())
    }

    pub fn sign(&self, id: i64, hash: &str, time: i64) -> Checkpoint {
        Checkpoint {
            id,
            hash: hash.to_string(),
            time,
            signature: self.pair.sign(&message(id, hash, time)).as_ref().to_vec(),
        }
    }

    /// Whether this server's key signed `cp`.
    pub fn signed(&self, cp: &Checkpoint) -> bool {
        UnparsedPublicKey::new(&ED25519, self.pair.public_key().as_ref())
            .verify(&message(cp.id, &cp.hash, cp.time), &cp.signature)
            .is_ok()
    }
}

/// Why no checkpoint was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Empty,
    Broken { id: i64, problem: &'static str },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => f.write_str("the audit log is empty: nothing to checkpoint yet"),
            Self::Broken { id, problem } => write!(
                f,
                "not signing a checkpoint: audit log altered at event {id}: {problem}"
            ),
        }
    }
}

/// Verifies the whole chain, then signs its head: a checkpoint never vouches for a log
/// that does not verify. For the operator's `portcullis audit checkpoint`.
pub fn take(
    conn: &mut AnyConnection,
    signer: &Signer,
    now: i64,
) -> crate::db::QueryResult<Result<Checkpoint, Refusal>> {
    Ok(match crate::auth::audit::walk(conn, None)? {
        (super::ChainVerdict::Broken { id, problem }, _) => Err(Refusal::Broken { id, problem }),
        (_, None) => Err(Refusal::Empty),
        (_, Some((id, hash))) => Ok(signer.sign(id, &hash, now)),
    })
}

/// Signs the chain's newest event if its keyed link verifies (one row, whatever the
/// log's length: what the server writes to its log every hour and at shutdown; the
/// whole chain is checked by `audit verify`). A newest event without a valid keyed link
/// was not written by a holder of the key and is not signed.
pub fn take_head(
    conn: &mut AnyConnection,
    signer: &Signer,
    now: i64,
) -> crate::db::QueryResult<Result<Checkpoint, Refusal>> {
    let key = crate::db::conn::chain_key()
        .ok_or_else(|| crate::db::abort("the audit chain key is not loaded"))?;
    let Some(newest) = crate::db::repo::audit::last(conn)? else {
        return Ok(Err(Refusal::Empty));
    };
    if !key.verifies(&newest.prev_hash, &newest.chain_fields(), &newest.hash) {
        return Ok(Err(Refusal::Broken {
            id: newest.id,
            problem: "the newest event's keyed link does not verify",
        }));
    }
    Ok(Ok(signer.sign(newest.id, &newest.hash, now)))
}

/// Writes a checkpoint of the head to the log (hourly, at shutdown).
pub async fn log(db: &crate::db::Db, signer: &std::sync::Arc<Signer>, now: i64) {
    let s = signer.clone();
    let taken = db
        .run(move |c| take_head(c, &s, now).map_err(crate::db::DbError::from))
        .await;
    match taken {
        Ok(Ok(cp)) => tracing::info!(
            checkpoint = %cp,
            public_key = %signer.public_key(),
            "audit checkpoint"
        ),
        Ok(Err(Refusal::Empty)) => {}
        Ok(Err(r)) => tracing::error!(problem = %r, "audit checkpoint refused"),
        Err(e) => tracing::warn!(error = %e, "audit checkpoint failed; will retry"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_round_trips_and_only_its_key_signed_it() {
        let s = Signer::new(&MasterKey::from_bytes([5; 32]));
        let cp = s.sign(42, &"ab".repeat(32), 1_700_000_000);
        let text = format!("checkpoint={cp}");
        let back: Checkpoint = text.parse().unwrap();
        assert_eq!(back, cp);
        assert!(s.signed(&back));
        assert!(!Signer::new(&MasterKey::from_bytes([6; 32])).signed(&back));
        let mut moved = back.clone();
        moved.id = 43;
        assert!(!s.signed(&moved));
        for bad in ["", "v1.1.2.3", "v2.1.aa.1.sig", "v1.x.aa.1.AAAA"] {
            assert!(bad.parse::<Checkpoint>().is_err(), "{bad}");
        }
    }
}
