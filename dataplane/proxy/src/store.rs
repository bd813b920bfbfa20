//! Persistence of the last applied table: one protobuf file (`GetRouteTableResponse`: table
//! and version) written atomically (temporary file, fsync, rename, fsync of the directory),
//! so a crash leaves either the old or the new table, never a torn one.

use prost::Message;
use sluice_proto::v1::{GetRouteTableResponse, RouteTable};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "l7-route-table.pb";

#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// Creates `dir` when missing.
    pub fn open(dir: &Path) -> std::io::Result<Store> {
        std::fs::create_dir_all(dir)?;
        Ok(Store {
            path: dir.join(FILE_NAME),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The persisted table and version; `None` when nothing was ever applied. A file that
    /// does not decode is an error (never silently start empty).
    pub fn load(&self) -> anyhow::Result<Option<(RouteTable, u64)>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(anyhow::anyhow!("reading {}: {e}", self.path.display())),
        };
        let saved = GetRouteTableResponse::decode(bytes.as_slice())
            .map_err(|e| anyhow::anyhow!("{} is corrupt: {e}", self.path.display()))?;
        Ok(Some((saved.table.unwrap_or_default(), saved.version)))
    }

    pub fn save(&self, table: &RouteTable, version: u64) -> std::io::Result<()> {
        let bytes = GetRouteTableResponse {
            table: Some(table.clone()),
            version,
        }
        .encode_to_vec();
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
        {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        std::fs::File::open(dir)?.sync_all()
    }
}
