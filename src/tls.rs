//! TLS for outgoing HTTPS (embedding providers, Omi): rustls with the `ring` provider, which builds
//! offline without cmake (reqwest's default provider, aws-lc-rs, needs it).

/// Installs the process-wide crypto provider; call before building an HTTP client. Idempotent.
pub fn install_crypto_provider() {
    // Err only means a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
