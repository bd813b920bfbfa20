//! Applying route tables: validate and compile, check the expected version, bind new ports,
//! persist, publish, then open/close listeners. Applies are serialized; requests never wait
//! for one (they read the published table).

use crate::config;
use crate::listeners::Listeners;
use crate::metrics::Metrics;
use crate::proxy::Context;
use crate::store::Store;
use crate::table::Table;
use crate::violations::Violations;
use crate::workers::Workers;
use arc_swap::ArcSwap;
use sluice_proto::v1::RouteTable;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

#[derive(Debug)]
pub enum ApplyError {
    Invalid(Violations),
    VersionMismatch {
        expected: u64,
        current: u64,
    },
    Bind {
        field: String,
        socket: String,
        error: std::io::Error,
    },
    Persist(std::io::Error),
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApplyError::Invalid(v) => write!(f, "invalid route table: {v}"),
            ApplyError::VersionMismatch { expected, current } => {
                write!(
                    f,
                    "expected_version {expected} is not the current version {current}"
                )
            }
            ApplyError::Bind {
                field,
                socket,
                error,
            } => write!(f, "{field}: cannot listen on {socket}: {error}"),
            ApplyError::Persist(e) => write!(f, "persisting the route table: {e}"),
        }
    }
}

impl std::error::Error for ApplyError {}

impl From<ApplyError> for tonic::Status {
    fn from(e: ApplyError) -> tonic::Status {
        match &e {
            ApplyError::Invalid(v) => v.to_status(),
            ApplyError::VersionMismatch { .. } => tonic::Status::aborted(e.to_string()),
            ApplyError::Bind { .. } => tonic::Status::failed_precondition(e.to_string()),
            ApplyError::Persist(_) => tonic::Status::internal(e.to_string()),
        }
    }
}

#[derive(Debug)]
struct Current {
    proto: RouteTable,
    version: u64,
    listeners: Listeners,
}

#[derive(Debug)]
pub struct Control {
    current: tokio::sync::Mutex<Current>,
    pub ctx: Arc<Context>,
    store: Option<Store>,
    ready: AtomicBool,
}

impl Control {
    /// Connections are served on the caller's runtime.
    pub fn new(store: Option<Store>) -> Arc<Control> {
        Control::with_workers(store, Workers::default())
    }

    /// Connections are served on `workers`' threads.
    pub fn with_workers(store: Option<Store>, workers: Workers) -> Arc<Control> {
        let metrics = Arc::new(Metrics::default());
        let table = Arc::new(ArcSwap::from_pointee(Table::default()));
        let ctx = Arc::new(Context::new(table, metrics, workers));
        Arc::new(Control {
            current: tokio::sync::Mutex::new(Current {
                proto: RouteTable::default(),
                version: 0,
                listeners: Listeners::new(ctx.clone()),
            }),
            ctx,
            store,
            ready: AtomicBool::new(false),
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.ctx.metrics
    }

    /// Ready once the persisted table (if any) is being served.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Relaxed)
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Relaxed);
    }

    /// Serves the persisted table, if there is one.
    pub async fn restore(&self) -> anyhow::Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let Some((table, version)) = store.load()? else {
            tracing::info!(file = %store.path().display(), "no persisted route table");
            return Ok(());
        };
        let compiled = config::compile(&table, "table", &self.ctx.metrics).map_err(|v| {
            anyhow::anyhow!(
                "persisted route table {} is invalid: {v}",
                store.path().display()
            )
        })?;
        let mut current = self.current.lock().await;
        let bound = current.listeners.prepare(&compiled).map_err(|e| {
            anyhow::anyhow!(
                "restoring the route table: cannot listen on {}: {}",
                e.key,
                e.error
            )
        })?;
        let compiled = Arc::new(compiled);
        self.ctx.table.store(compiled.clone());
        current.listeners.commit(&compiled, bound);
        current.proto = table;
        current.version = version;
        self.ctx.metrics.table_version.store(version, Relaxed);
        tracing::info!(version, file = %store.path().display(), "route table restored");
        Ok(())
    }

    pub async fn get(&self) -> (RouteTable, u64) {
        let current = self.current.lock().await;
        (current.proto.clone(), current.version)
    }

    /// Applies `table`; returns the version in force and whether it changed.
    pub async fn apply(
        &self,
        table: RouteTable,
        expected_version: Option<u64>,
    ) -> Result<(u64, bool), ApplyError> {
        let compiled =
            config::compile(&table, "table", &self.ctx.metrics).map_err(ApplyError::Invalid)?;
        let mut current = self.current.lock().await;
        if let Some(expected) = expected_version {
            if expected != current.version {
                return Err(ApplyError::VersionMismatch {
                    expected,
                    current: current.version,
                });
            }
        }
        if table == current.proto && current.version > 0 {
            return Ok((current.version, false));
        }
        let bound = current.listeners.prepare(&compiled).map_err(|e| {
            let index = table
                .listeners
                .iter()
                .position(|l| {
                    l.port == u32::from(e.key.port) && l.address.parse().ok() == e.key.address
                })
                .unwrap_or(0);
            ApplyError::Bind {
                field: format!("table.listeners[{index}]"),
                socket: e.key.to_string(),
                error: e.error,
            }
        })?;
        let version = current.version + 1;
        if let Some(store) = &self.store {
            // On failure the new sockets are dropped (closed) and nothing changes.
            store.save(&table, version).map_err(ApplyError::Persist)?;
        }
        let compiled = Arc::new(compiled);
        self.ctx.table.store(compiled.clone());
        current.listeners.commit(&compiled, bound);
        current.proto = table;
        current.version = version;
        self.ctx.metrics.table_version.store(version, Relaxed);
        self.ctx.metrics.table_applies.fetch_add(1, Relaxed);
        tracing::info!(
            version,
            sockets = compiled.sockets.len(),
            "route table applied"
        );
        Ok((version, true))
    }

    /// Stops accepting everywhere (shutdown); returns when the listeners are told.
    pub async fn stop_listeners(&self) {
        self.current.lock().await.listeners.stop_all();
    }
}
