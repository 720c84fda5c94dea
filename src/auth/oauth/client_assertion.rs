//! `private_key_jwt` (RFC 7523 section 2.2, OpenID Connect Core section 9): a client
//! proves itself with a JWT it signed with one of the keys it registered, instead of a
//! secret we would have to keep. What is checked here is the assertion alone (its
//! signature and claims); that its `jti` is used once is the database's job
//! (`db::repo::client_assertions`), called by `client_auth` after these checks pass so
//! a forged assertion never takes a row.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value};

use super::Client;
use super::jws::{self, VerifyKey};
use crate::domain::tokens::hash;

/// The `client_assertion_type` of a JWT assertion (RFC 7523 section 2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// What a client may sign its assertions with. Never `none`, never HMAC: a client's
/// public key must not double as a shared secret.
pub const SIGNING_ALGS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];
/// Clock skew allowed between the client and us.
const LEEWAY_SECS: i64 = 60;
/// How far ahead an assertion may expire: it is meant for one request, and a long-lived
/// one would be a bearer credential (and a long-kept row in the replay table).
const MAX_LIFETIME_SECS: i64 = 300;
/// The longest `jti` we keep a hash of (they are hashed, so this only bounds work).
const MAX_JTI_LEN: usize = 256;

/// An assertion whose signature and claims checked out: its `jti` still has to be
/// recorded as used, until `expires_at`.
#[derive(Debug)]
pub struct Accepted {
    pub jti_hash: String,
    pub expires_at: i64,
    /// The SHA-256 of the `jti` alone, as the audit log names a replayed one.
    pub jti_sha256: String,
}

/// The client an assertion says it comes from (`sub`, which must equal `iss`), read
/// before anything is checked: only to find whose keys check it.
pub fn claimed_client(assertion: &str) -> Option<String> {
    let claims = unverified_claims(assertion)?;
    claims.get("sub")?.as_str().map(str::to_string)
}

fn unverified_claims(assertion: &str) -> Option<Map<String, Value>> {
    let payload = assertion.split('.').nth(1)?;
    serde_json::from_slice(&B64.decode(payload).ok()?).ok()
}

/// Checks an assertion `client` presented, against its JWK Set `jwks`, for a server
/// whose issuer is `issuer` and whose token endpoint is `token_endpoint`, at `now`.
/// `Err` says why, for the log (the client only ever hears `invalid_client`).
pub fn check(
    (client, jwks): (&Client, Option<&str>),
    assertion: &str,
    (issuer, token_endpoint): (&str, &str),
    now: i64,
) -> Result<Accepted, &'static str> {
    if !client.uses_private_key_jwt() {
        return Err("the client does not use private_key_jwt");
    }
    let alg = jws::header_alg(assertion).ok_or("no or unknown alg")?;
    if !SIGNING_ALGS.contains(&alg.as_str()) {
        return Err("an algorithm not allowed");
    }
    let jwk = signing_key(jwks, assertion, &alg)?;
    let key = VerifyKey::from_jwk(&alg, &jwk.to_string()).map_err(|_| "an unusable key")?;
    let claims = key.verify(assertion).ok_or("a bad signature")?.claims;

    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(client.client_id.as_str())
        || text("sub") != Some(client.client_id.as_str())
    {
        return Err("iss and sub must be the client id");
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !audiences
        .iter()
        .any(|a| *a == issuer || *a == token_endpoint)
    {
        return Err("aud names neither the issuer nor the token endpoint");
    }
    let time = |name: &str| claims.get(name).map(numeric_date);
    let exp = time("exp").flatten().ok_or("no exp")?;
    if exp + LEEWAY_SECS <= now {
        return Err("expired");
    }
    if exp > now + MAX_LIFETIME_SECS + LEEWAY_SECS {
        return Err("exp too far ahead");
    }
    for name in ["iat", "nbf"] {
        match time(name) {
            None => {}
            Some(Some(t)) if t <= now + LEEWAY_SECS => {}
            Some(_) => return Err("iat or nbf in the future or not a date"),
        }
    }
    let jti = text("jti").filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN);
    let jti = jti.ok_or("no usable jti")?;
    Ok(Accepted {
        jti_hash: hash(&format!("{}\n{jti}", client.client_id)),
        jti_sha256: hash(jti),
        // Kept as long as the assertion could still pass the expiry check.
        expires_at: exp + LEEWAY_SECS,
    })
}

/// RFC 7519's NumericDate: seconds, possibly fractional.
fn numeric_date(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// The client's key that should have signed the assertion: the one its `kid` names,
/// else the only one. A key that states another `alg`, or is for encryption, is not
/// taken.
fn signing_key(jwks: Option<&str>, assertion: &str, alg: &str) -> Result<Value, &'static str> {
    let keys = jwks
        .and_then(|j| serde_json::from_str::<Value>(j).ok())
        .and_then(|j| j.get("keys")?.as_array().cloned())
        .ok_or("the client has no keys")?;
    let kid = jws::key_id(assertion);
    let mut candidates = keys.into_iter().filter(|k| match &kid {
        Some(kid) => k.get("kid").and_then(Value::as_str) == Some(kid),
        None => true,
    });
    let (Some(key), None) = (candidates.next(), candidates.next()) else {
        return Err("no single key matches the kid");
    };
    if key.get("alg").is_some_and(|a| a.as_str() != Some(alg)) {
        return Err("the key is for another algorithm");
    }
    if key.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
        return Err("the key is not for signatures");
    }
    Ok(key)
}

/// A JWK Set a client registers: public signing keys only, in a form we can use.
/// Returns it as stored (compact JSON), or what is wrong with it, for the operator.
pub fn registered_jwks(text: &str) -> Result<String, String> {
    let set: Value =
        serde_json::from_str(text).map_err(|e| format!("the JWK Set is not JSON: {e}"))?;
    let keys = set
        .get("keys")
        .and_then(Value::as_array)
        .filter(|k| !k.is_empty())
        .ok_or("a JWK Set needs a non-empty \"keys\" array")?;
    for key in keys {
        // A private key sent to us is a private key leaked: refuse rather than store it.
        if ["d", "p", "q", "k"].iter().any(|m| key.get(m).is_some()) {
            return Err(
                "the JWK Set holds a private or symmetric key: register public keys only".into(),
            );
        }
        let usable = SIGNING_ALGS
            .iter()
            .any(|alg| VerifyKey::from_jwk(alg, &key.to_string()).is_ok());
        if !usable {
            return Err(format!(
                "not a public key for {}: {key}",
                SIGNING_ALGS.join(", ")
            ));
        }
    }
    Ok(set.to_string())
}
