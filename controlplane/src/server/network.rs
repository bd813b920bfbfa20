//! `sluice.v1.Network`: interface addresses, static routes and static neighbours.

use super::controller::Controller;
use crate::convert;
use crate::validate;
use sluice_proto::v1;
use sluice_proto::v1::network_server::Network;
use tonic::{Request, Response, Status};

/// The `Network` gRPC service.
#[derive(Clone, Debug)]
pub(crate) struct NetworkApi {
    pub controller: Controller,
}

#[tonic::async_trait]
impl Network for NetworkApi {
    async fn apply_interface(
        &self,
        request: Request<v1::ApplyInterfaceRequest>,
    ) -> Result<Response<v1::ApplyInterfaceResponse>, Status> {
        let (spec, expected) =
            validate::apply_interface_request(request.get_ref(), &self.controller.config().ports)
                .map_err(|v| v.to_status())?;
        let applied = self
            .controller
            .mutate("ApplyInterface", move |state| {
                state.apply_interface(spec, expected)
            })
            .await?;
        Ok(Response::new(v1::ApplyInterfaceResponse {
            interface: Some(convert::interface_to_proto(&applied.object)),
            changed: applied.changed,
        }))
    }

    async fn delete_interface(
        &self,
        request: Request<v1::DeleteInterfaceRequest>,
    ) -> Result<Response<v1::DeleteInterfaceResponse>, Status> {
        let request = request.into_inner();
        let port = validate::port_name(&request.port, "port").map_err(|v| v.to_status())?;
        let (expected, allow_missing) = (request.resource_version, request.allow_missing);
        let removed = self
            .controller
            .mutate("DeleteInterface", move |state| {
                state.delete_interface(&port, expected, allow_missing)
            })
            .await?;
        Ok(Response::new(v1::DeleteInterfaceResponse {
            deleted: removed.is_some(),
        }))
    }

    async fn list_interfaces(
        &self,
        _request: Request<v1::ListInterfacesRequest>,
    ) -> Result<Response<v1::ListInterfacesResponse>, Status> {
        let state = self.controller.state();
        Ok(Response::new(v1::ListInterfacesResponse {
            interfaces: state
                .interfaces()
                .values()
                .map(convert::interface_to_proto)
                .collect(),
        }))
    }

    async fn apply_route(
        &self,
        request: Request<v1::ApplyRouteRequest>,
    ) -> Result<Response<v1::ApplyRouteResponse>, Status> {
        let (spec, expected) =
            validate::apply_route_request(request.get_ref()).map_err(|v| v.to_status())?;
        let applied = self
            .controller
            .mutate("ApplyRoute", move |state| state.apply_route(spec, expected))
            .await?;
        Ok(Response::new(v1::ApplyRouteResponse {
            route: Some(convert::route_to_proto(&applied.object)),
            changed: applied.changed,
        }))
    }

    async fn delete_route(
        &self,
        request: Request<v1::DeleteRouteRequest>,
    ) -> Result<Response<v1::DeleteRouteResponse>, Status> {
        let request = request.into_inner();
        let prefix = validate::delete_route_request(&request).map_err(|v| v.to_status())?;
        let (expected, allow_missing) = (request.resource_version, request.allow_missing);
        let removed = self
            .controller
            .mutate("DeleteRoute", move |state| {
                state.delete_route(&prefix, expected, allow_missing)
            })
            .await?;
        Ok(Response::new(v1::DeleteRouteResponse {
            deleted: removed.is_some(),
        }))
    }

    async fn list_routes(
        &self,
        _request: Request<v1::ListRoutesRequest>,
    ) -> Result<Response<v1::ListRoutesResponse>, Status> {
        let state = self.controller.state();
        Ok(Response::new(v1::ListRoutesResponse {
            routes: state
                .routes()
                .values()
                .map(convert::route_to_proto)
                .collect(),
        }))
    }

    async fn apply_neighbour(
        &self,
        request: Request<v1::ApplyNeighbourRequest>,
    ) -> Result<Response<v1::ApplyNeighbourResponse>, Status> {
        let (spec, expected) =
            validate::apply_neighbour_request(request.get_ref()).map_err(|v| v.to_status())?;
        let applied = self
            .controller
            .mutate("ApplyNeighbour", move |state| {
                state.apply_neighbour(spec, expected)
            })
            .await?;
        Ok(Response::new(v1::ApplyNeighbourResponse {
            neighbour: Some(convert::neighbour_to_proto(&applied.object)),
            changed: applied.changed,
        }))
    }

    async fn delete_neighbour(
        &self,
        request: Request<v1::DeleteNeighbourRequest>,
    ) -> Result<Response<v1::DeleteNeighbourResponse>, Status> {
        let request = request.into_inner();
        let (port, address) =
            validate::delete_neighbour_request(&request).map_err(|v| v.to_status())?;
        let (expected, allow_missing) = (request.resource_version, request.allow_missing);
        let removed = self
            .controller
            .mutate("DeleteNeighbour", move |state| {
                state.delete_neighbour(&port, &address, expected, allow_missing)
            })
            .await?;
        Ok(Response::new(v1::DeleteNeighbourResponse {
            deleted: removed.is_some(),
        }))
    }

    async fn list_neighbours(
        &self,
        _request: Request<v1::ListNeighboursRequest>,
    ) -> Result<Response<v1::ListNeighboursResponse>, Status> {
        let state = self.controller.state();
        let ports = &self.controller.config().ports;
        let mut learned = self.controller.stats_source().learned_neighbours();
        learned.sort_by_key(|n| (n.port, n.address));
        let learned = learned.into_iter().map(|n| v1::Neighbour {
            address: n.address.to_string(),
            mac: n
                .mac
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
            port: ports
                .get(usize::from(n.port))
                .cloned()
                .unwrap_or_else(|| n.port.to_string()),
            learned: true,
            meta: None,
        });
        Ok(Response::new(v1::ListNeighboursResponse {
            neighbours: state
                .neighbours()
                .map(convert::neighbour_to_proto)
                .chain(learned)
                .collect(),
        }))
    }
}
