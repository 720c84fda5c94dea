//! The OpenID Connect provider: clients, signing keys, the authorization-code flow with
//! PKCE, and the tokens (RS256 JWTs signed with josekit over OpenSSL).
//!
//! Client secrets are generated here (32 random bytes), so SHA-256 at rest compared in
//! constant time is right; codes live 60 s and work once; a second use of a code is
//! refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jws::{JwsHeader, RS256};
use josekit::jwt::{self, JwtPayload};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::InternalError;
use super::audit::{AuditCtx, record};
use crate::clock::Clock;
use crate::db::Db;
use crate::db::repo::oauth::{self as repo, AuthCode, Client, SigningKey};
use crate::db::repo::{roles, users};
use crate::domain::audit::{AuditAction, Outcome};
use crate::domain::tokens::{generate, hash};
use crate::keys::Sealer;

pub const CODE_TTL_SECS: i64 = 60;
pub const SCOPES: [&str; 5] = ["openid", "profile", "email", "roles", "offline_access"];

fn other(e: impl std::fmt::Display) -> InternalError {
    InternalError::Other(e.to_string())
}

/// The signing key, created at first use (one winner across instances: the insert is
/// serialised and a loser reads the winner's key).
pub async fn signing_key(
    db: &Db,
    clock: &Clock,
    sealer: &Sealer,
) -> Result<(String, RsaKeyPair), InternalError> {
    if let Some(k) = db
        .run(|c| repo::active_key(c).map_err(InternalError::from))
        .await?
    {
        return open_key(sealer, &k);
    }
    let pair = tokio::task::spawn_blocking(|| RsaKeyPair::generate(2048))
        .await
        .map_err(other)?
        .map_err(other)?;
    let kid = generate()[..16].to_string();
    let mut public = pair.to_jwk_public_key();
    public.set_key_id(&kid);
    public.set_algorithm("RS256");
    public.set_key_use("sig");
    let row = SigningKey {
        kid: kid.clone(),
        alg: "RS256".into(),
        private_sealed: sealer.seal(&pair.to_der_private_key(), kid.as_bytes()),
        public_jwk: public.to_string(),
        created_at: clock.now(),
        retired_at: None,
    };
    let stored = db
        .run(move |c| {
            crate::db::conn::write_transaction(c, |c| {
                crate::db::conn::serialize(c, crate::db::conn::locks::SIGNING_KEY)?;
                match repo::active_key(c)? {
                    Some(existing) => Ok(existing),
                    None => {
                        repo::insert_key(c, &row)?;
                        Ok(row)
                    }
                }
            })
            .map_err(|e: diesel::result::Error| InternalError::from(e))
        })
        .await?;
    open_key(sealer, &stored)
}

fn open_key(sealer: &Sealer, k: &SigningKey) -> Result<(String, RsaKeyPair), InternalError> {
    let der = sealer
        .open(&k.private_sealed, k.kid.as_bytes())
        .ok_or_else(|| other("signing key does not open with this master key"))?;
    Ok((k.kid.clone(), RsaKeyPair::from_der(der).map_err(other)?))
}

/// The JWKS document: every published key.
pub async fn jwks(db: &Db) -> Result<Value, InternalError> {
    let keys = db
        .run(|c| repo::published_keys(c).map_err(InternalError::from))
        .await?;
    let keys: Vec<Value> = keys
        .iter()
        .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
        .collect();
    Ok(json!({ "keys": keys }))
}

fn sign(kid: &str, pair: &RsaKeyPair, claims: Value, typ: &str) -> Result<String, InternalError> {
    let Value::Object(map) = claims else {
        return Err(other("claims must be an object"));
    };
    let payload = JwtPayload::from_map(map).map_err(other)?;
    let mut header = JwsHeader::new();
    header.set_key_id(kid);
    header.set_token_type(typ);
    let signer = RS256
        .signer_from_der(pair.to_der_private_key())
        .map_err(other)?;
    jwt::encode_with_signer(&payload, &header, &signer).map_err(other)
}

/// Checks an access token we issued: signature by one of our keys, not expired.
pub async fn verify_access_token(
    db: &Db,
    clock: &Clock,
    token: &str,
) -> Result<Option<Value>, InternalError> {
    let keys = db
        .run(|c| repo::published_keys(c).map_err(InternalError::from))
        .await?;
    for k in keys {
        let Ok(jwk) = Jwk::from_bytes(k.public_jwk.as_bytes()) else {
            continue;
        };
        let Ok(verifier) = RS256.verifier_from_jwk(&jwk) else {
            continue;
        };
        if let Ok((payload, header)) = jwt::decode_with_verifier(token, &verifier) {
            if header.token_type() != Some("at+jwt") {
                return Ok(None);
            }
            let exp = payload.claim("exp").and_then(Value::as_i64).unwrap_or(0);
            if exp <= clock.now() {
                return Ok(None);
            }
            return Ok(Some(Value::Object(payload.claims_set().clone())));
        }
    }
    Ok(None)
}

pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub public: bool,
    pub scopes: Vec<String>,
    pub grants: Vec<String>,
    pub skip_consent: bool,
}

/// Registers a client; returns its id and, for a confidential client, the secret
/// (shown once, stored as SHA-256).
pub async fn create_client(
    db: &Db,
    clock: &Clock,
    c: NewClient,
    ctx: &AuditCtx,
) -> Result<Result<(String, Option<String>), String>, InternalError> {
    for u in c.redirect_uris.iter().chain(&c.post_logout_redirect_uris) {
        match url::Url::parse(u) {
            Ok(url) if url.fragment().is_none() && matches!(url.scheme(), "https" | "http") => {}
            _ => {
                return Ok(Err(format!(
                    "not an absolute http(s) URL without a fragment: {u}"
                )));
            }
        }
    }
    if c.redirect_uris.is_empty() {
        return Ok(Err("a client needs at least one redirect URI".into()));
    }
    let scopes = if c.scopes.is_empty() {
        vec!["openid".into(), "profile".into(), "email".into()]
    } else {
        c.scopes
    };
    if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Ok(Err(format!("unknown scope: {bad}")));
    }
    let grants = if c.grants.is_empty() {
        vec!["authorization_code".into()]
    } else {
        c.grants
    };
    let client_id = generate()[..22].to_string();
    let secret = (!c.public).then(generate);
    let row = Client {
        client_id: client_id.clone(),
        name: c.name,
        secret_hash: secret.as_deref().map(hash),
        redirect_uris: serde_json::to_string(&c.redirect_uris).map_err(other)?,
        post_logout_redirect_uris: serde_json::to_string(&c.post_logout_redirect_uris)
            .map_err(other)?,
        scopes: scopes.join(" "),
        grants: grants.join(" "),
        skip_consent: c.skip_consent,
        created_at: clock.now(),
    };
    let (ctx, now) = (ctx.clone(), clock.now());
    db.run(move |conn| {
        crate::db::conn::write_transaction(conn, |conn| {
            repo::insert_client(conn, &row)?;
            record(
                conn,
                &ctx,
                now,
                AuditAction::ClientCreated,
                Outcome::Success,
                None,
                json!({"client_id": row.client_id, "name": row.name}),
            )
        })
        .map_err(InternalError::from)
    })
    .await?;
    Ok(Ok((client_id, secret)))
}

pub async fn client(db: &Db, id: &str) -> Result<Option<Client>, InternalError> {
    let id = id.to_string();
    db.run(move |c| repo::find_client(c, &id).map_err(InternalError::from))
        .await
}

/// Client authentication at the token endpoint: the secret compared as SHA-256 in
/// constant time. Public clients have none and must use PKCE.
pub fn client_authenticates(client: &Client, secret: Option<&str>) -> bool {
    match (&client.secret_hash, secret) {
        (Some(stored), Some(given)) => hash(given).as_bytes().ct_eq(stored.as_bytes()).into(),
        (None, None) => true,
        _ => false,
    }
}

/// What the signed-in user approved for the client, recorded with the code.
pub struct Grant {
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub sid: String,
}

pub async fn issue_code(db: &Db, clock: &Clock, g: Grant) -> Result<String, InternalError> {
    let code = generate();
    let now = clock.now();
    let row = AuthCode {
        code_hash: hash(&code),
        client_id: g.client_id,
        user_id: g.user_id,
        redirect_uri: g.redirect_uri,
        scope: g.scope,
        nonce: g.nonce,
        code_challenge: g.code_challenge,
        auth_time: g.auth_time,
        amr: g.amr.join(" "),
        sid: g.sid,
        created_at: now,
        expires_at: now + CODE_TTL_SECS,
        used_at: None,
    };
    db.run(move |c| repo::insert_code(c, &row).map_err(InternalError::from))
        .await?;
    Ok(code)
}

pub async fn has_consent(
    db: &Db,
    user_id: &str,
    client_id: &str,
    scope: &str,
) -> Result<bool, InternalError> {
    let (u, c2) = (user_id.to_string(), client_id.to_string());
    let granted = db
        .run(move |c| repo::consent(c, &u, &c2).map_err(InternalError::from))
        .await?;
    Ok(granted.is_some_and(|g| {
        let have: Vec<&str> = g.split_whitespace().collect();
        scope.split_whitespace().all(|s| have.contains(&s))
    }))
}

pub async fn record_consent(
    db: &Db,
    clock: &Clock,
    user_id: &str,
    client_id: &str,
    scope: &str,
    ctx: &AuditCtx,
) -> Result<(), InternalError> {
    let (u, cl, s, ctx, now) = (
        user_id.to_string(),
        client_id.to_string(),
        scope.to_string(),
        ctx.clone(),
        clock.now(),
    );
    db.run(move |c| {
        crate::db::conn::write_transaction(c, |c| {
            repo::grant(c, &u, &cl, &s, now)?;
            record(
                c,
                &ctx,
                now,
                AuditAction::ConsentGranted,
                Outcome::Success,
                Some(&u),
                json!({"client_id": cl, "scope": s}),
            )
        })
        .map_err(InternalError::from)
    })
    .await
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    /// RFC 6749 `invalid_grant`.
    InvalidGrant(&'static str),
    InvalidClient,
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `at_hash`: the left half of SHA-256 of the access token (RS256), base64url.
fn at_hash(access_token: &str) -> String {
    let d = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d[..16])
}

pub struct Tokens {
    pub access_token: String,
    pub id_token: Option<String>,
    pub expires_in: i64,
    pub scope: String,
}

/// The token endpoint's `authorization_code` grant, for an authenticated client.
#[expect(clippy::too_many_arguments)]
pub async fn exchange_code(
    db: &Db,
    clock: &Clock,
    sealer: &Sealer,
    issuer: &str,
    access_ttl: i64,
    client: &Client,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
    ctx: &AuditCtx,
) -> Result<Result<Tokens, TokenError>, InternalError> {
    let now = clock.now();
    let h = hash(code);
    let row = db
        .run(move |c| {
            crate::db::conn::write_transaction(c, |c| {
                let Some(row) = repo::find_code(c, &h)? else {
                    return Ok(None);
                };
                let first = repo::use_code(c, &h, now)?;
                Ok::<_, diesel::result::Error>(Some((row, first)))
            })
            .map_err(InternalError::from)
        })
        .await?;
    let Some((row, first_use)) = row else {
        return Ok(Err(TokenError::InvalidGrant("unknown code")));
    };
    if !first_use {
        return Ok(Err(TokenError::InvalidGrant("code already used")));
    }
    if row.client_id != client.client_id {
        return Ok(Err(TokenError::InvalidGrant(
            "code issued to another client",
        )));
    }
    if row.expires_at <= now {
        return Ok(Err(TokenError::InvalidGrant("code expired")));
    }
    if row.redirect_uri != redirect_uri {
        return Ok(Err(TokenError::InvalidGrant("redirect_uri does not match")));
    }
    match (&row.code_challenge, verifier) {
        (Some(ch), Some(v)) if s256(v).as_bytes().ct_eq(ch.as_bytes()).into() => {}
        (None, None) if !client.is_public() => {}
        _ => return Ok(Err(TokenError::InvalidGrant("PKCE verification failed"))),
    }
    let uid = row.user_id.clone();
    let (user, roles) = db
        .run(move |c| Ok::<_, InternalError>((users::find(c, &uid)?, roles::of_user(c, &uid)?)))
        .await?;
    let Some(user) = user.filter(|u| !u.disabled) else {
        return Ok(Err(TokenError::InvalidGrant("user no longer active")));
    };
    let (kid, pair) = signing_key(db, clock, sealer).await?;
    let scopes: Vec<&str> = row.scope.split_whitespace().collect();
    let exp = now + access_ttl;
    let access = sign(
        &kid,
        &pair,
        json!({
            "iss": issuer, "sub": user.id, "aud": client.client_id, "client_id": client.client_id,
            "scope": row.scope, "jti": generate(), "iat": now, "exp": exp, "auth_time": row.auth_time,
        }),
        "at+jwt",
    )?;
    let id_token = if scopes.contains(&"openid") {
        let mut claims = json!({
            "iss": issuer, "sub": user.id, "aud": client.client_id, "iat": now, "exp": now + 300,
            "auth_time": row.auth_time, "amr": row.amr.split_whitespace().collect::<Vec<_>>(),
            "acr": if row.amr.contains("mfa") { "mfa" } else { "pwd" },
            "sid": row.sid, "at_hash": at_hash(&access), "azp": client.client_id,
        });
        if let Some(n) = &row.nonce {
            claims["nonce"] = json!(n);
        }
        if scopes.contains(&"email") {
            claims["email"] = json!(user.email);
            claims["email_verified"] = json!(user.email_verified);
        }
        if scopes.contains(&"profile") {
            claims["name"] = json!(user.display_name);
        }
        if scopes.contains(&"roles") {
            claims["roles"] = json!(roles);
        }
        Some(sign(&kid, &pair, claims, "JWT")?)
    } else {
        None
    };
    let (ctx, uid, cid, scope) = (
        ctx.clone(),
        user.id.clone(),
        client.client_id.clone(),
        row.scope.clone(),
    );
    db.run(move |c| {
        record(
            c,
            &ctx,
            now,
            AuditAction::TokenIssued,
            Outcome::Success,
            Some(&uid),
            json!({"client_id": cid, "scope": scope, "grant": "authorization_code"}),
        )
        .map_err(InternalError::from)
    })
    .await?;
    Ok(Ok(Tokens {
        access_token: access,
        id_token,
        expires_in: access_ttl,
        scope: row.scope,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
