//! Persistence of the desired state in the daemon's state directory.
//!
//! The whole state is one JSON file, `state.json`, wrapped in `{"format_version": N,
//! "state": ...}`. Every save writes a temporary file in the same directory, fsyncs it, renames
//! it over `state.json` and fsyncs the directory: after a crash at any point the file is either
//! the old state or the new one, never a mix. Temporary files a crash leaves behind are never
//! read, and the next [`StateStore::open`] deletes them.
//!
//! A state file that cannot be read or parsed is an error naming the path and the cause; the
//! daemon must refuse to start rather than start empty and lose the configuration. A missing
//! file means a fresh appliance: [`StateStore::load`] returns an empty state.
//!
//! [`StateStore::open`] takes an exclusive lock on `lock` in the directory, so two daemons
//! cannot overwrite each other's state; the lock is released when the store is dropped (or the
//! process dies).

use crate::state::DesiredState;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The state file's name in the state directory.
pub const STATE_FILE: &str = "state.json";
/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "lock";
/// Prefix of temporary files; anything starting with it is a leftover of an interrupted save.
const TEMP_PREFIX: &str = ".state.json.tmp";
/// The format this build writes. Older formats would be migrated on load; newer ones are
/// refused (a downgrade must not silently drop fields it does not know).
pub const FORMAT_VERSION: u32 = 1;

/// Why the state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create or open state directory {path}: {source}")]
    Directory { path: PathBuf, source: io::Error },
    #[error("state directory {path} is locked by another process (is another sluiced running?)")]
    Locked { path: PathBuf },
    #[error("cannot read state file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "state file {path} is corrupt: {source}; fix it or move it away to start with an empty \
         state (refusing to start so the configuration is not lost)"
    )]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "state file {path} has format_version {found}, this build reads up to {FORMAT_VERSION}: \
         it was written by a newer sluiced"
    )]
    UnsupportedFormat { path: PathBuf, found: u32 },
    #[error("cannot write state file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

#[derive(Serialize)]
struct FileOut<'a> {
    format_version: u32,
    state: &'a DesiredState,
}

#[derive(Deserialize)]
struct FileVersion {
    format_version: u32,
}

#[derive(Deserialize)]
struct FileIn {
    #[allow(dead_code)]
    format_version: u32,
    state: DesiredState,
}

/// The state directory, locked for this process.
#[derive(Debug)]
pub struct StateStore {
    dir: PathBuf,
    /// Holds the exclusive lock for the store's lifetime.
    _lock: File,
}

impl StateStore {
    /// Opens (creating if needed) the state directory, locks it and removes temporary files of
    /// interrupted saves.
    pub fn open(dir: impl AsRef<Path>) -> Result<StateStore, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let dir_error = |source| StoreError::Directory {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(dir_error)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(dir_error)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked { path: dir.clone() })
            }
            Err(fs::TryLockError::Error(e)) => return Err(dir_error(e)),
        }
        for entry in fs::read_dir(&dir).map_err(dir_error)? {
            let entry = entry.map_err(dir_error)?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                // Best effort: a leftover that cannot be removed is still never read.
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(StateStore { dir, _lock: lock })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The stored state, or a new empty one (random selection seed) when there is no state
    /// file yet.
    pub fn load(&self) -> Result<DesiredState, StoreError> {
        Ok(self.load_existing()?.unwrap_or_default())
    }

    /// The stored state; `None` when there is no state file yet.
    pub fn load_existing(&self) -> Result<Option<DesiredState>, StoreError> {
        load_file(&self.path())
    }

    /// Persists `state` atomically and durably (see the module docs).
    pub fn save(&self, state: &DesiredState) -> Result<(), StoreError> {
        let path = self.path();
        let write_error = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        let mut bytes = serde_json::to_vec(&FileOut {
            format_version: FORMAT_VERSION,
            state,
        })
        .map_err(|e| write_error(io::Error::other(e)))?;
        bytes.push(b'\n');

        let temp = self
            .dir
            .join(format!("{TEMP_PREFIX}.{}", std::process::id()));
        let result = write_synced(&temp, &bytes)
            .and_then(|()| fs::rename(&temp, &path))
            .and_then(|()| File::open(&self.dir)?.sync_all());
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result.map_err(write_error)
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Reads a state file; `None` when it does not exist.
pub fn load_file(path: &Path) -> Result<Option<DesiredState>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let corrupt = |source| StoreError::Corrupt {
        path: path.to_path_buf(),
        source,
    };
    // The version first, so a newer format is reported as such, not as a parse error.
    let version: FileVersion = serde_json::from_slice(&bytes).map_err(corrupt)?;
    if version.format_version > FORMAT_VERSION || version.format_version == 0 {
        return Err(StoreError::UnsupportedFormat {
            path: path.to_path_buf(),
            found: version.format_version,
        });
    }
    let file: FileIn = serde_json::from_slice(&bytes).map_err(corrupt)?;
    Ok(Some(file.state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{service, snat_pool};

    fn sample_state() -> DesiredState {
        let mut state = DesiredState::with_selection_seed(0x5eed);
        state.apply_snat_pool(snat_pool("egress", 1), None).unwrap();
        let mut full = service("api", 20);
        full.mode = crate::state::NatMode::FullNat;
        full.snat_pool = Some("egress".into());
        state.apply_service(full, None).unwrap();
        state.apply_service(service("web", 10), None).unwrap();
        state
    }

    #[test]
    fn missing_file_gives_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert!(store.load_existing().unwrap().is_none());
        let state = store.load().unwrap();
        assert_eq!(state.revision(), 0);
        assert!(state.services().is_empty());
    }

    #[test]
    fn round_trip_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let state = sample_state();
        {
            let store = StateStore::open(dir.path()).unwrap();
            store.save(&state).unwrap();
        }
        let store = StateStore::open(dir.path()).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded, state, "including the derived indexes");
        assert_eq!(loaded.selection_seed(), 0x5eed);
        // The loaded state keeps enforcing its rules.
        let mut loaded = loaded;
        assert!(loaded.apply_service(service("clash", 10), None).is_err());
        let text = fs::read_to_string(store.path()).unwrap();
        assert!(text.starts_with("{\"format_version\":1,"), "{text}");
    }

    #[test]
    fn temp_files_of_an_interrupted_save_are_ignored_and_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let state = sample_state();
        StateStore::open(dir.path()).unwrap().save(&state).unwrap();
        // A crash between writing the temp file and the rename leaves this behind.
        let leftover = dir.path().join(format!("{TEMP_PREFIX}.4242"));
        fs::write(&leftover, b"{\"format_version\":1,\"state\":{\"trunc").unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), state);
        assert!(!leftover.exists(), "open removes leftovers");
    }

    #[test]
    fn corrupt_file_is_an_error_naming_path_and_cause() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        fs::write(
            store.path(),
            b"{\"format_version\":1,\"state\":{\"revision\":",
        )
        .unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains(&store.path().display().to_string()), "{err}");
        assert!(err.contains("is corrupt: EOF while parsing"), "{err}");

        // Semantically broken content (two services on one listener) is corrupt too.
        let mut bad = serde_json::to_value(FileOut {
            format_version: FORMAT_VERSION,
            state: &sample_state(),
        })
        .unwrap();
        bad["state"]["services"]["web"]["spec"]["vip"] = "198.18.100.20".into();
        fs::write(store.path(), bad.to_string()).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("both listen on 198.18.100.20:80/TCP"), "{err}");
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        fs::write(store.path(), b"{\"format_version\":2,\"state\":{}}").unwrap();
        assert!(matches!(
            store.load(),
            Err(StoreError::UnsupportedFormat { found: 2, .. })
        ));
    }

    #[test]
    fn a_second_store_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = StateStore::open(dir.path()).unwrap();
        assert!(matches!(
            StateStore::open(dir.path()),
            Err(StoreError::Locked { .. })
        ));
    }
}
