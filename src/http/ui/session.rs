//! Browser sessions: a random token in an HttpOnly cookie, recorded server-side (by its hash) so that
//! sign-out and expiry really end it and an operator can see sign-ins in the audit trail.
//!
//! Server-side records rather than signed cookies: a signed cookie stays valid until it expires even
//! after sign-out, and revoking it would need a deny list, which is a session table anyway.
//!
//! The cookie is `SameSite=Lax`, not `Strict`: people arrive from Omi, a notification or an e-mail
//! (cross-site navigations), and a `Strict` cookie would not be sent on those, so they would look
//! signed out. Cross-site POSTs still carry no cookie, and every POST also needs the CSRF token.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::error::PageError;
use crate::domain::{Timestamp, Uid};
use crate::http::AppState;
use crate::http::auth::request_id;
use crate::store::{Actor, Context, NewUiSession, SignInMethod, UiSession};

pub const SESSION_COOKIE: &str = "am_session";

/// 256 random bits, base64url: a session token, a CSRF token, a sign-in form token.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The value of a cookie sent with the request. Hand-written: our cookies hold base64url tokens only,
/// so a cookie crate (and the date library it brings) would add nothing.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// Whether cookies must be `Secure`: the service is published over https (its public URL), or a
/// proxy says this request came over https.
pub fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    let public_https = state
        .config
        .ui
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    public_https || forwarded_https
}

/// A `Set-Cookie` value; `max_age` 0 deletes the cookie.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    same_site: &str,
    max_age_seconds: i64,
    secure: bool,
) -> (axum::http::HeaderName, HeaderValue) {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite={same_site}; Max-Age={max_age_seconds}{secure}"
    );
    (
        SET_COOKIE,
        HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static("")),
    )
}

/// Starts a session for a user who proved who they are; returns the cookie to set.
pub async fn start(
    state: &AppState,
    headers: &HeaderMap,
    uid: &Uid,
    method: SignInMethod,
    proof_actor: Option<Actor>,
) -> Result<(axum::http::HeaderName, HeaderValue), PageError> {
    let token = random_token();
    let ttl_hours = i64::from(state.config.ui.session_ttl_hours);
    let id = uuid::Uuid::new_v4();
    let new = NewUiSession {
        id,
        token_hash: token_hash(&token),
        csrf_token: random_token(),
        method,
        expires_at: Timestamp::from_micros(
            Timestamp::now().as_micros() + ttl_hours * 3_600_000_000,
        ),
    };
    let ctx = Context::new(
        proof_actor.unwrap_or(Actor::Session(id)),
        request_id(headers),
    );
    state.store.create_ui_session(uid, new, &ctx).await?;
    tracing::info!(session_id = %id, method = method.as_str(), "app home sign-in");
    Ok(set_cookie(
        SESSION_COOKIE,
        &token,
        "/app",
        "Lax",
        ttl_hours * 3600,
        secure(state, headers),
    ))
}

/// The signed-in person looking at a page: their session, and the audit context of this request.
pub struct Viewer {
    pub session: UiSession,
    token_hash: String,
    pub ctx: Context,
}

impl Viewer {
    pub fn uid(&self) -> &Uid {
        &self.session.uid
    }

    pub fn csrf_token(&self) -> &str {
        &self.session.csrf_token
    }

    /// Revokes the session (sign-out).
    pub async fn end(&self, state: &AppState) -> Result<(), PageError> {
        state
            .store
            .end_ui_session(self.uid(), &self.token_hash, &self.ctx)
            .await?;
        Ok(())
    }
}

impl OptionalFromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Ok(None);
        };
        let hash = token_hash(token);
        let Some(session) = state.store.ui_session(&hash, Timestamp::now()).await? else {
            return Ok(None);
        };
        let ctx = Context::new(Actor::Session(session.id), request_id(&parts.headers));
        Ok(Some(Self {
            session,
            token_hash: hash,
            ctx,
        }))
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        <Self as OptionalFromRequestParts<AppState>>::from_request_parts(parts, state)
            .await?
            .ok_or(PageError::SignInRequired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_cookie_only() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("other=1; am_session=abc; am_session_x=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
        headers.insert(COOKIE, HeaderValue::from_static("am_session="));
        assert_eq!(cookie(&headers, SESSION_COOKIE), None);
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a).len(), 64);
    }
}
