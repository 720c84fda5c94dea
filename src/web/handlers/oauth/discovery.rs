//! Discovery (OpenID Connect Discovery 1.0, and the same document as OAuth 2.0
//! Authorization Server Metadata, RFC 8414) and the JWKS: public documents.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::auth::oauth::authorize::{GRANTS, SCOPES};
use crate::auth::oauth::client_assertion::SIGNING_ALGS;
use crate::auth::oauth::signing_keys::ALGS;
use crate::config::Config;
use crate::web::error::AppError;
use crate::web::state::AppState;

fn base(ctx_base: &str) -> String {
    ctx_base.trim_end_matches('/').to_string()
}

/// The discovery document: built once at start (it depends on the configuration only).
pub fn discovery_document(config: &Config) -> web::Bytes {
    let b = base(&config.base_url());
    let doc = json!({
        "issuer": b,
        "authorization_endpoint": format!("{b}/oauth/authorize"),
        "token_endpoint": format!("{b}/oauth/token"),
        "device_authorization_endpoint": format!("{b}/oauth/device_authorization"),
        "userinfo_endpoint": format!("{b}/oauth/userinfo"),
        "jwks_uri": format!("{b}/oauth/jwks"),
        "revocation_endpoint": format!("{b}/oauth/revoke"),
        "introspection_endpoint": format!("{b}/oauth/introspect"),
        "end_session_endpoint": format!("{b}/oauth/logout"),
        "pushed_authorization_request_endpoint": format!("{b}/oauth/par"),
        "require_pushed_authorization_requests": config.require_par,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GRANTS,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ALGS,
        "userinfo_signing_alg_values_supported": ["none"],
        "scopes_supported": SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "acr_values_supported": ["pwd", "mfa"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "acr", "sid", "at_hash", "azp", "email", "email_verified", "name", "roles", "groups"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": false,
    });
    web::Bytes::from(doc.to_string())
}

/// A public JSON document (discovery, JWKS): any origin may read it, caches may keep it.
fn public_json(body: web::Bytes, max_age: u32) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}")))
        .body(body)
}

/// `/.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`:
/// RFC 8414 metadata is a subset of OpenID discovery's fields with the same meanings,
/// so OAuth-only clients read the same document.
pub async fn discovery(st: web::Data<AppState>) -> HttpResponse {
    public_json(st.discovery.clone(), 3600)
}

pub async fn jwks(st: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    // Served from memory; the first call after start creates the RS256 key if none.
    // Short: a relying party that caches it sees a new key within a minute.
    Ok(public_json(st.oauth.jwks().await?, 60))
}
