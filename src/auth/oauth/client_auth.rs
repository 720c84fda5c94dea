//! Client authentication at the token, PAR, revocation and introspection endpoints: who
//! the client is (a confidential client's secret, compared in constant time; a public
//! client only names itself), and the rate limits that go with it: failed attempts per
//! caller address, token requests per client. The HTTP side only reads the credentials
//! out of the request (`client_secret_basic` or `client_secret_post`).

use std::net::IpAddr;

use super::authorize::client_authenticates;
use super::{Client, FlowError, OAuthError, OAuthProvider};
use crate::auth::throttle::{RetryAfter, Throttle};

/// The credentials a request carries.
pub enum Credentials {
    /// A client id, and its secret unless the client is public.
    Given(String, Option<String>),
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
    /// address `ip`; token and revocation requests against the client's own budget.
    pub async fn authenticate_client(
        &self,
        throttle: &Throttle,
        credentials: Credentials,
        ip: IpAddr,
        purpose: Purpose,
    ) -> Result<Client, FlowError> {
        let (id, secret) = match credentials {
            Credentials::Given(id, secret) => (id, secret),
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
        let ok = client
            .filter(|c| client_authenticates(c, secret.as_deref()))
            .filter(|c| !(confidential_only && c.is_public()));
        let Some(client) = ok else {
            throttle.client_auth_failed(ip).await.map_err(too_many)?;
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
