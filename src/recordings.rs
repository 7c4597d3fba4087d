//! Audio from Omi's audio-bytes webhook, kept as WAV files: one file per stretch of speech (a new one
//! after a silence gap or a change of sample rate), under a per-user quota and retention period.

use sha2::{Digest, Sha256};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::config::Webhooks;
use crate::domain::{Timestamp, Uid};
use crate::store::{Recording, Store, StoreError};

const WAV_HEADER_BYTES: u64 = 44;

#[derive(Debug, Error)]
pub enum RecordingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the recording: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    Stored { recording_id: String },
    OverQuota,
}

pub struct Recorder {
    data_dir: PathBuf,
    store: Arc<dyn Store>,
    silence_gap_micros: i64,
    quota_bytes: i64,
    /// Appends are serialised: chunks of one stream must land in order, and Omi sends at most one
    /// chunk per user every few seconds, so one lock costs nothing measurable.
    lock: Mutex<()>,
}

impl Recorder {
    pub fn new(data_dir: &Path, store: Arc<dyn Store>, settings: &Webhooks) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            store,
            silence_gap_micros: i64::try_from(settings.audio_silence_gap_seconds)
                .unwrap_or(i64::MAX / 2)
                * 1_000_000,
            quota_bytes: i64::try_from(settings.audio_quota_megabytes).unwrap_or(i64::MAX / 2)
                * 1024
                * 1024,
            lock: Mutex::new(()),
        }
    }

    pub async fn append(
        &self,
        uid: &Uid,
        sample_rate: u32,
        pcm: Vec<u8>,
    ) -> Result<Appended, RecordingError> {
        let _guard = self.lock.lock().await;
        let len = pcm.len() as i64;
        if self.store.recording_usage(uid).await? + len > self.quota_bytes {
            return Ok(Appended::OverQuota);
        }
        let now = Timestamp::now();
        let continues_after = Timestamp::from_micros(now.as_micros() - self.silence_gap_micros);
        let recording = match self
            .store
            .current_recording(uid, sample_rate, continues_after)
            .await?
        {
            Some(recording) => recording,
            None => {
                let id = Uuid::now_v7().to_string();
                let recording = Recording {
                    file: format!("recordings/{}/{id}.wav", user_dir(uid)),
                    id,
                    sample_rate,
                    bytes: 0,
                    duration_seconds: 0.0,
                    started_at: now,
                    last_chunk_at: now,
                };
                self.store.start_recording(uid, recording.clone()).await?;
                recording
            }
        };
        let path = self.path(&recording);
        tokio::task::spawn_blocking(move || write_pcm(&path, sample_rate, &pcm))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        self.store
            .recording_appended(uid, &recording.id, len, now)
            .await?;
        Ok(Appended::Stored {
            recording_id: recording.id,
        })
    }

    pub fn path(&self, recording: &Recording) -> PathBuf {
        self.data_dir.join(&recording.file)
    }

    /// Deletes files the store has forgotten; a file already gone is fine.
    pub async fn remove_files(&self, files: Vec<String>) {
        for file in files {
            if let Err(error) = tokio::fs::remove_file(self.data_dir.join(&file)).await
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(%error, "cannot delete a recording file");
            }
        }
    }

    pub async fn expire(&self, before: Timestamp) -> Result<usize, StoreError> {
        let files = self.store.expire_recordings(before).await?;
        let count = files.len();
        self.remove_files(files).await;
        Ok(count)
    }
}

/// Users get a directory named by a hash of their uid: a uid may contain `/` or `..`.
fn user_dir(uid: &Uid) -> String {
    hex::encode(&Sha256::digest(uid.as_str().as_bytes())[..12])
}

/// Appends PCM16 mono samples to a WAV file, writing the header first for a new file and correcting
/// its sizes after, then flushing to disk before the chunk is acknowledged.
fn write_pcm(path: &Path, sample_rate: u32, pcm: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    if file.metadata()?.len() < WAV_HEADER_BYTES {
        file.set_len(0)?;
        file.write_all(&wav_header(sample_rate, 0))?;
    }
    file.seek(SeekFrom::End(0))?;
    file.write_all(pcm)?;
    let data = u32::try_from(file.metadata()?.len() - WAV_HEADER_BYTES).unwrap_or(u32::MAX);
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&wav_header(sample_rate, data))?;
    file.sync_data()
}

fn wav_header(sample_rate: u32, data_bytes: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(WAV_HEADER_BYTES as usize);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&(36u32.saturating_add(data_bytes)).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    h.extend_from_slice(&1u16.to_le_bytes()); // PCM
    h.extend_from_slice(&1u16.to_le_bytes()); // mono
    h.extend_from_slice(&sample_rate.to_le_bytes());
    h.extend_from_slice(&(sample_rate * 2).to_le_bytes()); // byte rate
    h.extend_from_slice(&2u16.to_le_bytes()); // block align
    h.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_bytes.to_le_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_keep_a_valid_wav_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b.wav");
        write_pcm(&path, 16_000, &[1, 0, 2, 0]).unwrap();
        write_pcm(&path, 16_000, &[3, 0]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 44 + 6);
        assert_eq!(&bytes[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 36 + 6);
        assert_eq!(
            u32::from_le_bytes(bytes[24..28].try_into().unwrap()),
            16_000
        );
        assert_eq!(u32::from_le_bytes(bytes[40..44].try_into().unwrap()), 6);
        assert_eq!(&bytes[44..], &[1, 0, 2, 0, 3, 0]);
    }
}
