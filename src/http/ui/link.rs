//! Sign-in links: `<public url>/app?uid=<uid>&exp=<unix seconds>&sig=<signature>`, where the signature
//! is HMAC-SHA256 under `ui.link_secret` of the uid and the expiry. Omi opens the app home with
//! `?uid=` alone, which proves nothing (anyone can type a uid); a link issued by this service (by an
//! operator, the admin API, or later a setup notification) adds the proof. Links can be opened until
//! they expire, so one link serves the phone and the computer.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use thiserror::Error;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::domain::{Timestamp, Uid};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiPath};

type HmacSha256 = Hmac<Sha256>;

/// Longest a link may be valid: a leaked link should not work for long.
pub const MAX_TTL_HOURS: u32 = 30 * 24;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinkError {
    #[error("sign-in links are off on this server (ui.link_secret is not set)")]
    Off,
    #[error("this sign-in link is incomplete or damaged")]
    Malformed,
    #[error("this sign-in link is not valid")]
    BadSignature,
    #[error("this sign-in link has expired")]
    Expired,
}

/// A link to hand to a person, and until when it works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SignInLink {
    pub url: String,
    pub expires_at: Timestamp,
}

/// Signs and checks links with the configured secret.
pub struct LinkSigner<'a> {
    secret: &'a SecretString,
}

impl<'a> LinkSigner<'a> {
    pub fn from_config(config: &'a Config) -> Result<Self, LinkError> {
        config
            .ui
            .link_secret
            .as_ref()
            .map(|secret| Self { secret })
            .ok_or(LinkError::Off)
    }

    fn mac(&self, uid: &str, expires: i64) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(self.secret.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!());
        // Domain-separated, with the uid's length, so no other message signed with this secret (or
        // another uid and expiry) reads the same.
        mac.update(format!("angel-memory/app-link/v1\n{}\n{uid}\n{expires}", uid.len()).as_bytes());
        mac
    }

    /// A link for `uid`, valid for `ttl_hours` from now, under `base` (e.g. `https://host`).
    pub fn link(&self, base: &str, uid: &Uid, ttl_hours: u32) -> SignInLink {
        let expires = Timestamp::now().as_micros() / 1_000_000 + i64::from(ttl_hours) * 3600;
        let signature =
            URL_SAFE_NO_PAD.encode(self.mac(uid.as_str(), expires).finalize().into_bytes());
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("uid", uid.as_str())
            .append_pair("exp", &expires.to_string())
            .append_pair("sig", &signature)
            .finish();
        SignInLink {
            url: format!("{}/app?{query}", base.trim_end_matches('/')),
            expires_at: Timestamp::from_micros(expires * 1_000_000),
        }
    }

    /// The uid a link was issued for, if its signature holds and it has not expired.
    pub fn verify(&self, uid: &str, expires: &str, signature: &str) -> Result<Uid, LinkError> {
        let uid = Uid::parse(uid).map_err(|_| LinkError::Malformed)?;
        let expires: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| LinkError::Malformed)?;
        // Constant-time comparison inside `verify_slice`.
        self.mac(uid.as_str(), expires)
            .verify_slice(&signature)
            .map_err(|_| LinkError::BadSignature)?;
        if expires <= Timestamp::now().as_micros() / 1_000_000 {
            return Err(LinkError::Expired);
        }
        Ok(uid)
    }
}

/// Where people reach this service: the given base, else `ui.public_url`, else the listen address.
pub fn base_url(config: &Config, given: Option<&str>) -> String {
    given
        .map(str::to_owned)
        .or_else(|| config.ui.public_url.clone())
        .unwrap_or_else(|| format!("http://{}", config.listen))
}

pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_link))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLinkRequest {
    /// Hours the link works, 1–720; default `ui.link_ttl_hours`.
    ttl_hours: Option<u32>,
    /// Base address of the link (e.g. `https://memory.example.com`); default `ui.public_url`.
    public_url: Option<String>,
}

#[utoipa::path(post, path = "/v1/admin/users/{uid}/ui-link", tag = "admin", params(("uid" = String, Path)),
    request_body = CreateLinkRequest,
    responses((status = 201, description = "A sign-in link to the app home for this user", body = SignInLink),
              (status = 400, body = ApiError), (status = 403, description = "Sign-in links are off", body = ApiError),
              (status = 404, body = ApiError)),
    security(("admin_token" = [])))]
async fn create_link(
    State(state): State<AppState>,
    ApiPath(uid): ApiPath<String>,
    ApiJson(body): ApiJson<CreateLinkRequest>,
) -> Result<(StatusCode, Json<SignInLink>), ApiError> {
    let uid = Uid::parse(uid)?;
    let signer = LinkSigner::from_config(&state.config).map_err(|_| {
        ApiError::Forbidden(
            "sign-in links are off: set ANGEL_MEMORY_UI__LINK_SECRET to enable them",
        )
    })?;
    let ttl = parse_ttl(body.ttl_hours.unwrap_or(state.config.ui.link_ttl_hours))
        .map_err(ApiError::BadRequest)?;
    let base = parse_base(body.public_url.as_deref()).map_err(ApiError::BadRequest)?;
    state.store.get_user(&uid).await?;
    let link = signer.link(&base_url(&state.config, base), &uid, ttl);
    tracing::info!(uid = %uid, "sign-in link issued");
    Ok((StatusCode::CREATED, Json(link)))
}

pub fn parse_ttl(hours: u32) -> Result<u32, String> {
    if (1..=MAX_TTL_HOURS).contains(&hours) {
        Ok(hours)
    } else {
        Err(format!("ttl_hours must be between 1 and {MAX_TTL_HOURS}"))
    }
}

pub fn parse_base(url: Option<&str>) -> Result<Option<&str>, String> {
    match url {
        Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) => {
            Err("public_url must start with https:// or http://".into())
        }
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let mut config = Config::default();
        config.ui.link_secret = Some("0123456789abcdef0123456789abcdef".to_owned().into());
        config
    }

    fn query(url: &str) -> (String, String, String) {
        let query = url.split_once('?').unwrap().1;
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).unwrap().1.clone();
        (get("uid"), get("exp"), get("sig"))
    }

    #[test]
    fn a_link_verifies_for_its_uid_only() {
        let config = config();
        let signer = LinkSigner::from_config(&config).unwrap();
        let uid = Uid::parse("user&one#x").unwrap();
        let link = signer.link("https://memory.example/", &uid, 1);
        assert!(
            link.url
                .starts_with("https://memory.example/app?uid=user%26one%23x&exp=")
        );
        let (u, exp, sig) = query(&link.url);
        assert_eq!(signer.verify(&u, &exp, &sig), Ok(uid));
        assert_eq!(
            signer.verify("someone-else", &exp, &sig),
            Err(LinkError::BadSignature)
        );
        let later = (exp.parse::<i64>().unwrap() + 3600).to_string();
        assert_eq!(
            signer.verify(&u, &later, &sig),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            signer.verify(&u, &exp, "not base64!"),
            Err(LinkError::Malformed)
        );
    }

    #[test]
    fn expired_links_and_other_secrets_are_refused() {
        let config = config();
        let signer = LinkSigner::from_config(&config).unwrap();
        let uid = Uid::parse("u1").unwrap();
        let expired = Timestamp::now().as_micros() / 1_000_000 - 1;
        let sig = URL_SAFE_NO_PAD.encode(signer.mac("u1", expired).finalize().into_bytes());
        assert_eq!(
            signer.verify("u1", &expired.to_string(), &sig),
            Err(LinkError::Expired)
        );
        let mut other = Config::default();
        other.ui.link_secret = Some("another-secret-another-secret-xx".to_owned().into());
        let link = signer.link("http://h", &uid, 1);
        let (u, exp, sig) = query(&link.url);
        assert_eq!(
            LinkSigner::from_config(&other)
                .unwrap()
                .verify(&u, &exp, &sig),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            LinkSigner::from_config(&Config::default()).err(),
            Some(LinkError::Off)
        );
    }
}
