//! Client authentication at the token, PAR, revocation and introspection endpoints: who
//! the client is (a confidential client's secret, compared in constant time; a public
//! client only names itself), and the rate limits that go with it: failed attempts per
//! caller address, token requests per client. The HTTP side only reads the credentials
//! out of the request (`client_secret_basic`, `client_secret_post`, or a
//! `private_key_jwt` assertion, checked in `client_assertion`).

use std::net::IpAddr;

use serde_json::json;

use super::authorize::client_authenticates;
use super::{Client, FlowError, OAuthError, OAuthProvider};
use crate::auth::audit::AuditCtx;
use crate::auth::throttle::{RetryAfter, Throttle};
use crate::domain::audit::{AuditAction, Outcome};

/// The credentials a request carries.
pub enum Credentials {
    /// A client id, and its secret unless the client is public.
    Given(String, Option<String>),
    /// A signed JWT (`private_key_jwt`), with the `client_id` the form named, if any.
    Assertion(Option<String>, String),
    Missing,
    /// Two methods at once, or a malformed Authorization header.
    Bad,
}

/// What a client authenticates for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The token, PAR and revocation endpoints: counted against the per-client limit.
    Token,
    /// Introspection, under the request's cache generation: confidential clients only,
    /// and not counted per client. Resource servers introspect for every request they
    /// serve, so a per-client budget would throttle the busy ones, and an authenticated
    /// caller guesses nothing here (failed client authentication is still limited per
    /// address).
    Introspection(Option<u64>),
}

impl OAuthProvider {
    /// The authenticated client, or the refusal. Failures count against the caller's
    /// address `ip`; token and revocation requests against the client's own budget. A
    /// refused `private_key_jwt` assertion of a registered client is audited (`ctx`:
    /// the caller) while the address is within its budget of failures.
    pub async fn authenticate_client(
        &self,
        throttle: &Throttle,
        credentials: Credentials,
        (ip, ctx): (IpAddr, &AuditCtx),
        purpose: Purpose,
    ) -> Result<Client, FlowError> {
        let (id, secret, assertion) = match credentials {
            Credentials::Given(id, secret) => (id, secret, None),
            Credentials::Assertion(named, assertion) => {
                let claimed = super::client_assertion::claimed_client(&assertion);
                // The form's client_id, when given, must be the one the assertion
                // names (checked against iss and sub with the signature).
                match named.or(claimed) {
                    Some(id) => (id, None, Some(assertion)),
                    None => {
                        throttle.client_auth_failed(ip).await.map_err(too_many)?;
                        return Err(OAuthError::InvalidClient.into());
                    }
                }
            }
            Credentials::Missing => return Err(OAuthError::InvalidClient.into()),
            Credentials::Bad => {
                return Err(OAuthError::InvalidRequest(
                    "use exactly one client authentication method",
                )
                .into());
            }
        };
        // A public client is named, not proven: count it per caller too, so strangers
        // naming it cannot use up its users' budget.
        let budget = |c: &Client| {
            if c.is_public() {
                format!("{}@{ip}", c.client_id)
            } else {
                c.client_id.clone()
            }
        };
        let (generation, counted) = match purpose {
            Purpose::Introspection(generation) => (generation, None),
            // An assertion is checked against the client's keys: no shortcut.
            Purpose::Token if assertion.is_some() => (self.generation().await, None),
            Purpose::Token => {
                let fast = self
                    .token_fast_path(throttle, &id, secret.as_deref(), &budget)
                    .await;
                match fast {
                    OneTrip::Done(client, verdict) => {
                        return verdict.map(|()| *client).map_err(too_many);
                    }
                    OneTrip::Counted(generation, key, verdict) => {
                        (Some(generation), Some((key, verdict)))
                    }
                    OneTrip::NotTaken => (self.generation().await, None),
                }
            }
        };
        let client = self.client(generation, &id).await?;
        let confidential_only = matches!(purpose, Purpose::Introspection(_));
        let mut refused = None;
        let ok = match (client, &assertion) {
            (Some(c), Some(jwt)) => match self.assertion_accepted(&c, jwt).await? {
                Assertion::Accepted => Some(c),
                why => {
                    refused = Some((c.client_id, why));
                    None
                }
            },
            (client, _) => client.filter(|c| client_authenticates(c, secret.as_deref())),
        };
        let ok = ok.filter(|c| !(confidential_only && c.is_public()));
        let Some(client) = ok else {
            // Counted first: past the address's budget the refusal is not written
            // again, so a flood of bad assertions cannot flood the audit log.
            throttle.client_auth_failed(ip).await.map_err(too_many)?;
            if let Some((client_id, why)) = refused {
                self.assertion_refused(ctx, &client_id, why).await?;
            }
            return Err(OAuthError::InvalidClient.into());
        };
        if confidential_only {
            return Ok(client);
        }
        let key = budget(&client);
        let verdict = match counted {
            Some((counted_key, verdict)) if counted_key == key => verdict,
            _ => throttle.token_request(&key).await,
        };
        verdict.map_err(too_many)?;
        Ok(client)
    }
}

/// What became of a client's `private_key_jwt` assertion.
enum Assertion {
    /// Signed by one of its keys, its claims in order, its `jti` new.
    Accepted,
    /// Why not (for the log and the audit event; the client hears `invalid_client`).
    Refused(&'static str),
    /// Checked out, but its `jti` was used already: a copy replayed. Carries the SHA-256
    /// (hex) of the `jti`.
    Replayed(String),
}

impl OAuthProvider {
    /// Whether `client`'s assertion checks out and its `jti` is used here for the first
    /// time (recorded only then, so forgeries never fill the replay table).
    async fn assertion_accepted(&self, client: &Client, jwt: &str) -> Result<Assertion, FlowError> {
        let id = client.client_id.clone();
        let now = self.clock.now();
        let issuer = self.issuer.clone();
        let (client, jwt) = (client.clone(), jwt.to_string());
        // One trip to the database: the keys are read, the assertion checked, and only
        // then is its jti recorded (so forgeries never fill the replay table).
        let verdict = self
            .db
            .run(move |c| {
                use crate::db::repo::client_assertions as repo;
                let jwks = repo::keys(c, &client.client_id)?;
                let token_endpoint = format!("{issuer}/oauth/token");
                let audience = (issuer.as_str(), token_endpoint.as_str());
                let checked =
                    super::client_assertion::check((&client, jwks.as_deref()), &jwt, audience, now);
                Ok::<_, crate::auth::InternalError>(match checked {
                    Ok(a) if repo::first_use(c, &a.jti_hash, a.expires_at, now)? => {
                        Assertion::Accepted
                    }
                    Ok(a) => Assertion::Replayed(a.jti_sha256),
                    Err(why) => Assertion::Refused(why),
                })
            })
            .await?;
        match &verdict {
            Assertion::Accepted => {}
            Assertion::Refused(why) => {
                tracing::info!(client_id = %id, "client assertion refused: {why}");
            }
            Assertion::Replayed(_) => tracing::warn!(client_id = %id, "client assertion replayed"),
        }
        Ok(verdict)
    }

    /// Audits a refused assertion of the registered client `client_id`:
    /// `client_assertion.replayed` for a copy of one already used (someone holds the
    /// client's signed assertions), `client.authentication_failed` for the rest (a bad
    /// signature, a key it never registered, wrong claims).
    async fn assertion_refused(
        &self,
        ctx: &AuditCtx,
        client_id: &str,
        why: Assertion,
    ) -> Result<(), FlowError> {
        let (action, outcome, details) = match why {
            Assertion::Accepted => return Ok(()),
            Assertion::Refused(reason) => (
                AuditAction::ClientAuthenticationFailed,
                Outcome::Failure,
                json!({"client_id": client_id, "method": "private_key_jwt", "reason": reason}),
            ),
            // The jti is no credential (it is worth nothing without the signed
            // assertion around it), but it is free text of up to 256 characters chosen
            // by whoever holds the assertion. Its SHA-256 is a fixed-size fingerprint
            // that still matches the client's own records (`sha256(jti)`), and keeps
            // the log as free of client-chosen text as the replay table, which holds
            // only hashes too.
            Assertion::Replayed(jti_sha256) => (
                AuditAction::ClientAssertionReplayed,
                Outcome::Denied,
                json!({"client_id": client_id, "jti_sha256": jti_sha256}),
            ),
        };
        let now = self.clock.now();
        self.audit
            .record(ctx, now, action, outcome, None, details)
            .await?;
        Ok(())
    }
}

/// How far the token endpoint's one-round-trip path got.
enum OneTrip {
    /// The memoised client authenticated and its generation is still current.
    Done(Box<Client>, Result<(), RetryAfter>),
    /// The request was counted under `key`, but the generation moved on to this one:
    /// the client must be read again (and counted again only if its key changed).
    Counted(u64, String, Result<(), RetryAfter>),
    NotTaken,
}

/// With Redis, a token request costs two round trips on the ordinary path: the cache
/// generation (to trust the memoised client record), then the client's rate limit.
/// When the cache holds a client that these credentials authenticate, one script does
/// both: it counts the request and returns the current generation, and the record is
/// used only if that generation is the one it was read in — the cache's rule, checked
/// after instead of before. Credentials the cache does not accept take the ordinary
/// path, so a stranger with a wrong secret never spends a client's budget.
impl OAuthProvider {
    async fn token_fast_path(
        &self,
        throttle: &Throttle,
        id: &str,
        secret: Option<&str>,
        budget: &impl Fn(&Client) -> String,
    ) -> OneTrip {
        let cache = &self.cache;
        let (Some(counter), Some((read_in, client))) = (cache.redis_key(), cache.client_as_of(id))
        else {
            return OneTrip::NotTaken;
        };
        if !client_authenticates(&client, secret) {
            return OneTrip::NotTaken;
        }
        let key = budget(&client);
        match throttle.token_request_reading(&key, counter).await {
            Some((verdict, current)) if current == read_in => {
                OneTrip::Done(Box::new(client), verdict)
            }
            Some((verdict, current)) => OneTrip::Counted(current, key, verdict),
            None => OneTrip::NotTaken,
        }
    }
}

fn too_many(wait: RetryAfter) -> FlowError {
    OAuthError::SlowDown {
        retry_after: wait.0,
    }
    .into()
}
