//! The way in: the app home URL (`/app`), sign-in with a signed link or an API key, and sign-out.
//!
//! Omi opens the app home with `?uid=<uid>`. A uid is not a secret, so it never opens a session: with
//! a live session of the same user the page simply shows, otherwise the sign-in page explains how to
//! prove who you are.

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::csrf::{self, Submitted};
use super::error::{PageError, PageQuery};
use super::layout;
use super::link::{LinkError, LinkSigner};
use super::memories::{self, TimelineParams};
use super::session::{self, SESSION_COOKIE, Viewer};
use crate::domain::ApiKeySecret;
use crate::http::AppState;
use crate::store::{Actor, SignInMethod};

/// What may come with the app home URL: Omi's `uid` (and OAuth `state`, ignored), a sign-in link's
/// `exp` and `sig`, and the timeline's own position and filter.
#[derive(Debug, Deserialize)]
pub struct HomeParams {
    uid: Option<String>,
    exp: Option<String>,
    sig: Option<String>,
    #[serde(flatten)]
    timeline: TimelineParams,
}

/// `GET /app`: the timeline for a signed-in person; otherwise sign-in (by link, or the form).
pub async fn home(
    State(state): State<AppState>,
    viewer: Option<Viewer>,
    headers: HeaderMap,
    PageQuery(params): PageQuery<HomeParams>,
) -> Result<Response, PageError> {
    if params.sig.is_some() || params.exp.is_some() {
        return link_sign_in(&state, &headers, viewer, &params).await;
    }
    match (viewer, params.uid.as_deref()) {
        (Some(viewer), None) => memories::timeline(&state, &viewer, params.timeline).await,
        (Some(viewer), Some(uid)) if viewer.uid().as_str() == uid => {
            memories::timeline(&state, &viewer, params.timeline).await
        }
        (Some(_), Some(_)) => Ok(sign_in_page(
            &state,
            &headers,
            StatusCode::OK,
            Some((
                "notice",
                "This browser is signed in to another account. Sign in again to switch.",
            )),
        )),
        // A bare uid proves nothing: explain how to sign in.
        (None, Some(_)) => Ok(sign_in_page(
            &state,
            &headers,
            StatusCode::OK,
            Some((
                "notice",
                "To see your memories here, sign in once: open the sign-in link Angel Memory sent you, or enter one of your API keys.",
            )),
        )),
        (None, None) => Ok(Redirect::to("/app/sign-in").into_response()),
    }
}

async fn link_sign_in(
    state: &AppState,
    headers: &HeaderMap,
    viewer: Option<Viewer>,
    params: &HomeParams,
) -> Result<Response, PageError> {
    let verified = LinkSigner::from_config(&state.config).and_then(|signer| {
        signer.verify(
            params.uid.as_deref().unwrap_or_default(),
            params.exp.as_deref().unwrap_or_default(),
            params.sig.as_deref().unwrap_or_default(),
        )
    });
    let uid = match verified {
        Ok(uid) => uid,
        Err(error) => {
            tracing::info!(%error, "sign-in link refused");
            let advice = match error {
                LinkError::Expired => {
                    "This sign-in link has expired. Ask for a new one, or sign in with an API key."
                }
                LinkError::Off => {
                    "Sign-in links are not enabled on this server. Sign in with an API key."
                }
                LinkError::Malformed | LinkError::BadSignature => {
                    "This sign-in link is not valid. Check that it was copied whole, or sign in with an API key."
                }
            };
            return Ok(sign_in_page(
                state,
                headers,
                StatusCode::UNAUTHORIZED,
                Some(("error", advice)),
            ));
        }
    };
    // A link for a user erased since it was issued leads nowhere.
    if state.store.get_user(&uid).await.is_err() {
        return Ok(sign_in_page(
            state,
            headers,
            StatusCode::UNAUTHORIZED,
            Some((
                "error",
                "This sign-in link is not valid for any account on this server.",
            )),
        ));
    }
    if let Some(previous) = viewer {
        previous.end(state).await?;
    }
    let cookie = session::start(state, headers, &uid, SignInMethod::Link, None).await?;
    // Away from the signed address, so it stays out of the history and the address bar.
    Ok(([cookie], Redirect::to("/app")).into_response())
}

#[derive(Debug, Deserialize)]
pub struct FormParams {
    signed_out: Option<String>,
}

/// `GET /app/sign-in`.
pub async fn form(
    State(state): State<AppState>,
    viewer: Option<Viewer>,
    headers: HeaderMap,
    PageQuery(params): PageQuery<FormParams>,
) -> Response {
    if viewer.is_some() {
        return Redirect::to("/app").into_response();
    }
    let message = params.signed_out.map(|_| ("notice", "You are signed out."));
    sign_in_page(&state, &headers, StatusCode::OK, message)
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    key: String,
    #[serde(default)]
    sign_in_token: String,
}

/// `POST /app/sign-in`: sign in with an API key.
pub async fn with_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Result<Response, PageError> {
    let Ok(Form(form)) = form else {
        return Ok(sign_in_page(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            Some(("error", "The sign-in form could not be read. Try again.")),
        ));
    };
    if !csrf::sign_in_token_matches(&headers, &form.sign_in_token) {
        return Ok(sign_in_page(
            &state,
            &headers,
            StatusCode::FORBIDDEN,
            Some((
                "error",
                "This sign-in form has expired or did not come from this site. Try again.",
            )),
        ));
    }
    let principal = match ApiKeySecret::from_presented(form.key.trim()) {
        Some(secret) => state.auth.authenticate(&secret).await?,
        None => None,
    };
    let Some(principal) = principal else {
        return Ok(sign_in_page(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some((
                "error",
                "That API key is not valid (it may have been revoked).",
            )),
        ));
    };
    let cookie = session::start(
        &state,
        &headers,
        &principal.uid,
        SignInMethod::ApiKey,
        Some(Actor::Key(principal.key_id)),
    )
    .await?;
    Ok(([cookie], Redirect::to("/app")).into_response())
}

#[derive(Debug, Deserialize)]
pub struct SignOutForm {}

/// `POST /app/sign-out`: ends the session everywhere it was used.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    submitted: Submitted<SignOutForm>,
) -> Result<Response, PageError> {
    submitted.viewer.end(&state).await?;
    let cookie = session::set_cookie(
        SESSION_COOKIE,
        "",
        "/app",
        "Lax",
        0,
        session::secure(&state, &headers),
    );
    Ok(([cookie], Redirect::to("/app/sign-in?signed_out=1")).into_response())
}

/// The sign-in page, with a fresh form token (and its cookie).
fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    message: Option<(&str, &str)>,
) -> Response {
    let (token, cookie) = csrf::sign_in_token(session::secure(state, headers));
    let links_on = state.config.ui.link_secret.is_some();
    let content = html! {
        h1 { "Sign in" }
        @if let Some((kind, text)) = message { (layout::message(kind, text)) }
        p {
            "Angel Memory keeps the memories of your Omi conversations. "
            @if links_on {
                "The easiest way in is the sign-in link you were sent (for example in the notification after setup). "
            }
            "You can also sign in with one of your API keys."
        }
        form.stack method="post" action="/app/sign-in" {
            input type="hidden" name="sign_in_token" value=(token);
            label for="key" { "API key" }
            input #key type="password" name="key" required autocomplete="current-password"
                spellcheck="false" autocapitalize="off" placeholder="am_…";
            button type="submit" { "Sign in" }
        }
        p.hint {
            "No key or link? Whoever runs this server can make you one: "
            code { "angel-memory ui link --uid <your uid>" } "."
        }
    };
    (
        status,
        [cookie],
        Html(layout::bare("Sign in", content).into_string()),
    )
        .into_response()
}
