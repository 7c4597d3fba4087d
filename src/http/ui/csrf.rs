//! CSRF protection for every state-changing request of the pages.
//!
//! Signed in: a synchronizer token, random per session and kept with the session record, is in every
//! form (`csrf`) and must come back with each POST. A page of another site can make a browser send a
//! POST with the session cookie (when `SameSite` allows it) but cannot read the token.
//!
//! Signing in: there is no session yet, so the sign-in form uses a double-submit token: a random value
//! in a `SameSite=Strict` cookie and the same value in the form. This stops another site from signing
//! a browser into the attacker's account ("login CSRF").

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::error::PageError;
use super::session::{self, Viewer};
use crate::http::AppState;

/// The form field that carries the token.
pub const FIELD: &str = "csrf";
const SIGN_IN_COOKIE: &str = "am_sign_in";

fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// A form posted by the signed-in viewer, its CSRF token checked, its fields parsed into `T`.
pub struct Submitted<T> {
    pub viewer: Viewer,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Submitted<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, state).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|_| PageError::bad_request("the form could not be read"))?;
        let presented = field(&bytes, FIELD).unwrap_or_default();
        if !same(&presented, viewer.csrf_token()) {
            tracing::warn!(session_id = %viewer.session.id, "form refused: CSRF token missing or wrong");
            return Err(PageError::Csrf);
        }
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| PageError::bad_request(format!("the form is not valid: {e}")))?;
        Ok(Self { viewer, form })
    }
}

/// A fresh token for a sign-in form, and the cookie that must come back with it.
pub fn sign_in_token(secure: bool) -> (String, (HeaderName, HeaderValue)) {
    let token = session::random_token();
    let cookie = session::set_cookie(
        SIGN_IN_COOKIE,
        &token,
        "/app/sign-in",
        "Strict",
        3600,
        secure,
    );
    (token, cookie)
}

/// Whether a posted sign-in form carries the token of its cookie.
pub fn sign_in_token_matches(headers: &HeaderMap, presented: &str) -> bool {
    session::cookie(headers, SIGN_IN_COOKIE)
        .is_some_and(|expected| !presented.is_empty() && same(presented, expected))
}
