//! `X-Request-Id`: accepted from the caller when sane, generated otherwise, returned on every response
//! and recorded on the request's span so that every log line of the request carries it.

use axum::extract::Request;
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::Response;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Drops a caller-supplied id that is too long or not printable ASCII; a fresh one is generated then.
pub async fn sanitize(mut req: Request, next: Next) -> Response {
    let acceptable = req.headers().get(&HEADER).is_none_or(|v| {
        let bytes = v.as_bytes();
        !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(u8::is_ascii_graphic)
    });
    if !acceptable {
        req.headers_mut().remove(&HEADER);
    }
    next.run(req).await
}
