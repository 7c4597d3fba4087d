//! Authenticity of webhook deliveries: Omi's `X-Omi-Signature` scheme v1 and Standard Webhooks.
//! Both verify over the raw body bytes, accept any of several signatures (secret rotation), bound the
//! timestamp in both directions, and compare in constant time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// Omi and the Standard Webhooks reference library both allow five minutes, inclusive.
pub const TOLERANCE_SECONDS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature timestamp is missing")]
    MissingTimestamp,
    #[error("the signature timestamp is outside the {TOLERANCE_SECONDS} s tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn within_tolerance(timestamp: i64, now: i64) -> Result<(), SignatureError> {
    if (now - timestamp).abs() > TOLERANCE_SECONDS {
        Err(SignatureError::Stale)
    } else {
        Ok(())
    }
}

/// Verifies `X-Omi-Signature: t=<unix>,v1=<hex>[,v1=<hex>]` over `"<t>.<uid>.<raw body>"`, with each
/// secret used as-is (UTF-8, `whsec_` prefix included). Unknown keys such as `v2` are ignored.
pub fn verify_omi(
    header: &str,
    uid: &str,
    body: &[u8],
    secrets: &[&str],
    now: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            "v1" => signatures.push(hex::decode(value).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    within_tolerance(timestamp, now)?;
    let t = timestamp.to_string();
    let matched = secrets.iter().filter(|s| !s.is_empty()).any(|secret| {
        let expected = hmac(
            secret.as_bytes(),
            &[t.as_bytes(), b".", uid.as_bytes(), b".", body],
        );
        signatures
            .iter()
            .any(|given| bool::from(given.as_slice().ct_eq(&expected)))
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Verifies Standard Webhooks headers: `webhook-signature: v1,<base64> [v1,<base64> …]` over
/// `"<webhook-id>.<webhook-timestamp>.<raw body>"`, keyed by the base64 part of `whsec_…`.
pub fn verify_standard(
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    secrets: &[&str],
    now: i64,
) -> Result<(), SignatureError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::MissingTimestamp)?;
    within_tolerance(ts, now)?;
    let given: Vec<Vec<u8>> = signature_header
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    if given.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let matched = secrets.iter().filter_map(|s| standard_key(s)).any(|key| {
        let expected = hmac(
            &key,
            &[id.as_bytes(), b".", timestamp.trim().as_bytes(), b".", body],
        );
        given
            .iter()
            .any(|g| bool::from(g.as_slice().ct_eq(&expected)))
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// What scheme v2 (Omi's chat-tool calls) signs besides the body.
pub struct SignedRequest<'a> {
    /// `X-Omi-Delivery`.
    pub delivery: &'a str,
    /// `X-Omi-Event`, e.g. `chat_tool`.
    pub event: &'a str,
    pub method: &'a str,
    /// The path as received (percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
}

/// Every byte outside `A–Z a–z 0–9 - . _ ~` as upper-case `%XX`.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn encode(raw: &[u8]) -> String {
    percent_encoding::percent_encode(raw, UNRESERVED).to_string()
}

/// Each `/` segment percent-decoded, then re-encoded; an empty path is `/`.
fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/')
        .map(|segment| encode(&percent_encoding::percent_decode_str(segment).collect::<Vec<u8>>()))
        .collect::<Vec<_>>()
        .join("/")
}

/// Decoded pairs, each half re-encoded, stable-sorted by encoded name, joined with `&`.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (encode(k.as_bytes()), encode(v.as_bytes())))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The seven lines scheme v2 signs before the body.
fn v2_message(request: &SignedRequest<'_>, t: i64) -> String {
    format!(
        "v2\n{t}\n{}\n{}\n{}\n{}\n{}\n",
        request.delivery,
        request.event,
        request.method.to_ascii_uppercase(),
        canonical_path(request.path),
        canonical_query(request.query)
    )
}

/// Verifies `X-Omi-Signature: t=<unix>,v2=<hex>[,v2=<hex>]` of a chat-tool call: HMAC-SHA256 over
/// `v2`, `t`, delivery, event, METHOD, canonical path and canonical query, each followed by a newline,
/// then the raw body. `v1` entries never satisfy it.
pub fn verify_omi_v2(
    header: &str,
    request: &SignedRequest<'_>,
    body: &[u8],
    secrets: &[&str],
    now: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once('=').ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            "v2" => signatures.push(hex::decode(value).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::MissingTimestamp)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    within_tolerance(timestamp, now)?;
    let signed = v2_message(request, timestamp);
    let matched = secrets.iter().filter(|s| !s.is_empty()).any(|secret| {
        let expected = hmac(secret.as_bytes(), &[signed.as_bytes(), body]);
        signatures
            .iter()
            .any(|given| bool::from(given.as_slice().ct_eq(&expected)))
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Signs a chat-tool call as Omi does (scheme v2): the header value. For tests and tools that call
/// this service the way Omi would.
pub fn sign_omi_v2(request: &SignedRequest<'_>, body: &[u8], secret: &str, t: i64) -> String {
    let signed = v2_message(request, t);
    format!(
        "t={t},v2={}",
        hex::encode(hmac(secret.as_bytes(), &[signed.as_bytes(), body]))
    )
}

fn standard_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    //! The vectors of shared/fixtures/omi/signed_request_example.md.
    use super::*;

    const CURRENT: &str = "whsec_QIktf9hRC0HwxheESHB71z2KSGTB7E0cjeqL5tgV1y4";
    const PREVIOUS: &str = "whsec_YIFj7PAD9UncEbs7KPah0RCAf7J0ErakWLm47yd5KRg";
    const UID: &str = "5Z9Lil2WHl1vvn5iP2pZw0fKm4BR";
    const BODY: &str = r#"{"session_id":"5Z9Lil2WHl1vvn5iP2pZw0fKm4BR","segments":[{"id":"2558fa41-83b8-4372-a924-50be28643122","text":"Morning! Is the buckwheat honey back in stock?","speaker":"SPEAKER_00","speaker_id":0,"is_user":true,"person_id":null,"start":0.0,"end":2.86}]}"#;
    const SIG_CURRENT: &str = "23668e8a24d0dec2b11cae54de7eda37b26a5f61d75a508cba7187e377e4439a";
    const SIG_PREVIOUS: &str = "3cd1e6e5aa1e529b92f09c9efe688d336dd74e8c65522a7bd686e89265f36249";
    const T: i64 = 1_763_481_958;

    fn check(
        header: &str,
        body: &str,
        uid: &str,
        secrets: &[&str],
        now: i64,
    ) -> Result<(), SignatureError> {
        verify_omi(header, uid, body.as_bytes(), secrets, now)
    }

    #[test]
    fn v2_canonical_form() {
        assert_eq!(canonical_path(""), "/");
        assert_eq!(canonical_path("/omi/tools/a%20b"), "/omi/tools/a%20b");
        assert_eq!(canonical_path("/x/caf\u{e9}"), "/x/caf%C3%A9");
        assert_eq!(canonical_query("b=2&a=x+y&a=%2B1"), "a=x%20y&a=%2B1&b=2");
        let request = SignedRequest {
            delivery: "d-1",
            event: "chat_tool",
            method: "post",
            path: "/omi/tools/remember",
            query: "token=abc",
        };
        let header = sign_omi_v2(&request, b"{}", CURRENT, T);
        assert_eq!(
            verify_omi_v2(&header, &request, b"{}", &[CURRENT], T),
            Ok(())
        );
        assert_eq!(
            verify_omi_v2(&header, &request, b"{ }", &[CURRENT], T),
            Err(SignatureError::Mismatch)
        );
        let v1_only = header.replace("v2=", "v1=");
        assert_eq!(
            verify_omi_v2(&v1_only, &request, b"{}", &[CURRENT], T),
            Err(SignatureError::Malformed),
            "a v1 signature never satisfies v2"
        );
    }

    #[test]
    fn omi_vectors() {
        let both = format!("t={T},v1={SIG_CURRENT},v1={SIG_PREVIOUS}");
        let current = format!("t={T},v1={SIG_CURRENT}");
        assert_eq!(check(&both, BODY, UID, &[CURRENT], T), Ok(()));
        assert_eq!(
            check(&both, BODY, UID, &[PREVIOUS], T + 5),
            Ok(()),
            "rotation: the previous secret"
        );
        assert_eq!(check(&current, BODY, UID, &[CURRENT], T), Ok(()));
        assert_eq!(
            check(
                &format!("t={T},v2={},v1={SIG_CURRENT}", "0".repeat(64)),
                BODY,
                UID,
                &[CURRENT],
                T
            ),
            Ok(())
        );
        assert_eq!(check(&current, BODY, UID, &[CURRENT], T + 300), Ok(()));
        assert_eq!(check(&current, BODY, UID, &[CURRENT], T - 300), Ok(()));
        assert_eq!(
            check(&current, BODY, UID, &[CURRENT], T + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            check(&current, BODY, UID, &[CURRENT], T - 301),
            Err(SignatureError::Stale)
        );
        let tampered = BODY.replace("\"end\":2.86", "\"end\":2.87");
        assert_eq!(
            check(&both, &tampered, UID, &[CURRENT], T),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&both, BODY, "Qm4TzR8vXc2LpN6yHs0WdK3fJb7A", &[CURRENT], T),
            Err(SignatureError::Mismatch)
        );
        let pretty =
            serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(BODY).unwrap())
                .unwrap();
        assert_eq!(
            check(&both, &pretty, UID, &[CURRENT], T),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(
                &format!("t={T},v1={SIG_PREVIOUS}"),
                BODY,
                UID,
                &[CURRENT],
                T
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(
                &format!("t=17634819xx,v1={SIG_CURRENT}"),
                BODY,
                UID,
                &[CURRENT],
                T
            ),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(&format!("v1={SIG_CURRENT}"), BODY, UID, &[CURRENT], T),
            Err(SignatureError::MissingTimestamp)
        );
        assert!(check("", BODY, UID, &[CURRENT], T).is_err());
        assert!(
            check(&current, BODY, UID, &[""], T).is_err(),
            "an empty secret never verifies"
        );
    }

    #[test]
    fn omi_non_ascii_body_is_hashed_as_received() {
        let body = r#"{"session_id":"5Z9Lil2WHl1vvn5iP2pZw0fKm4BR","segments":[{"id":"2864524f-7db6-4e9a-a5c2-a961c135c7f8","text":"Crème brûlée for Zoë — 🎂 at 7?","speaker":"SPEAKER_01","speaker_id":1,"is_user":false,"person_id":null,"start":3.4,"end":8.02}]}"#;
        let header =
            "t=1763481965,v1=08fc51d0c26990cee2f40d9fe92856277770c7ab1043adc91c4bf1f65a1a824f";
        assert_eq!(check(header, body, UID, &[CURRENT], 1_763_481_965), Ok(()));
        let escaped =
            serde_json::to_string(&serde_json::from_str::<serde_json::Value>(body).unwrap())
                .unwrap();
        let ascii = escaped.replace('è', "\\u00e8");
        assert!(check(header, &ascii, UID, &[CURRENT], 1_763_481_965).is_err());
    }

    #[test]
    fn standard_webhooks_vectors() {
        let secret = "whsec_+ODON7F6UYGmgZGhqD5EQw5svs7nJjw2";
        let previous = "whsec_mFKCfM1Eb3LE5UTYTib3Ez0Xh0ZI5uno";
        let id = "msg_8LfJQOo5HvUAnenzD97BvDkYqmA";
        let one = "v1,WsQaspoXRaZ2JS7QcEJo2H7KboFBULvkzpZhxHk9I2g=";
        let rotation = "v1,WsQaspoXRaZ2JS7QcEJo2H7KboFBULvkzpZhxHk9I2g= v1,AhBQxZZpTXb27htX34xy+6S+T4WNvJeX00xmUatrVfo=";
        let body = BODY.as_bytes();
        assert_eq!(
            verify_standard(id, "1763481958", one, body, &[secret], T),
            Ok(())
        );
        assert_eq!(
            verify_standard(id, "1763481958", rotation, body, &[previous], T),
            Ok(())
        );
        assert_eq!(
            verify_standard(id, "1763481958", one, b"{}", &[secret], T),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_standard("msg_other", "1763481958", one, body, &[secret], T),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_standard(id, "1763481958", one, body, &[secret], T + 301),
            Err(SignatureError::Stale)
        );
    }
}
