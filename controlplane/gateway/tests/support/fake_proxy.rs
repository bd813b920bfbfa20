//! An in-memory `sluice.v1.L7` server (the API of sluice-proxy) on a Unix socket: keeps the
//! last applied table and its version, which moves only when the table changes (as the real
//! proxy's does), so tests see what the controller sent and whether it rewrote it.
//!
//! Why a stand-in here while sluiced is the real server: the real L7 server
//! (`sluice_proxy::api::serve` over a `sluice_proxy::control::Control`) lives in the
//! sluice-proxy crate (dataplane/proxy), which another engineer is still writing: its API
//! is uncommitted and changing, so this crate's tests do not build on it yet. The real
//! server also binds every listener port of an applied table (port 80 in these tests) in
//! the test process. Once that crate settles, replace this file with it (`Control::new(None)`,
//! a Unix `ApiListeners`, a free listener port). The real proxy is already exercised end to
//! end by tests/e2e/test_gateway.py (HTTPRoute through sluiced and sluice-proxy).

use sluice_proto::v1;
use sluice_proto::v1::l7_server::{L7Server, L7};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

#[derive(Clone, Default)]
pub struct FakeProxy {
    pub table: Arc<Mutex<(Option<v1::RouteTable>, u64)>>,
}

impl FakeProxy {
    pub fn table(&self) -> Option<v1::RouteTable> {
        self.table.lock().unwrap().0.clone()
    }

    pub fn version(&self) -> u64 {
        self.table.lock().unwrap().1
    }

    pub async fn start(&self, dir: &Path) -> PathBuf {
        let path = dir.join("proxy.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let server = L7Server::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
                .await
                .unwrap();
        });
        path
    }
}

#[tonic::async_trait]
impl L7 for FakeProxy {
    async fn apply_route_table(
        &self,
        request: Request<v1::ApplyRouteTableRequest>,
    ) -> Result<Response<v1::ApplyRouteTableResponse>, Status> {
        let table = request
            .into_inner()
            .table
            .ok_or_else(|| Status::invalid_argument("table: required"))?;
        let mut state = self.table.lock().unwrap();
        let changed = state.0.as_ref() != Some(&table);
        if changed {
            state.0 = Some(table);
            state.1 += 1;
        }
        Ok(Response::new(v1::ApplyRouteTableResponse {
            version: state.1,
            changed,
        }))
    }

    async fn get_route_table(
        &self,
        _: Request<v1::GetRouteTableRequest>,
    ) -> Result<Response<v1::GetRouteTableResponse>, Status> {
        let state = self.table.lock().unwrap();
        Ok(Response::new(v1::GetRouteTableResponse {
            table: state.0.clone(),
            version: state.1,
        }))
    }
}
