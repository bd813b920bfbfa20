//! `sluice.v1.Pools`: VIP pools (IPAM) and SNAT pools.

use super::controller::Controller;
use crate::convert;
use crate::validate;
use sluice_proto::v1;
use sluice_proto::v1::pools_server::Pools;
use tonic::{Request, Response, Status};

/// The `Pools` gRPC service.
#[derive(Clone, Debug)]
pub(crate) struct PoolsApi {
    pub controller: Controller,
}

#[tonic::async_trait]
impl Pools for PoolsApi {
    async fn apply_vip_pool(
        &self,
        request: Request<v1::ApplyVipPoolRequest>,
    ) -> Result<Response<v1::ApplyVipPoolResponse>, Status> {
        let (spec, expected) =
            validate::apply_vip_pool_request(request.get_ref()).map_err(|v| v.to_status())?;
        let applied = self
            .controller
            .mutate("ApplyVipPool", move |state| {
                state.apply_vip_pool(spec, expected)
            })
            .await?;
        Ok(Response::new(v1::ApplyVipPoolResponse {
            pool: Some(convert::vip_pool_to_proto(&applied.object)),
            changed: applied.changed,
        }))
    }

    async fn delete_vip_pool(
        &self,
        request: Request<v1::DeleteVipPoolRequest>,
    ) -> Result<Response<v1::DeleteVipPoolResponse>, Status> {
        let request = request.into_inner();
        let name = validate::object_name(&request.name, "name").map_err(|v| v.to_status())?;
        let (expected, allow_missing) = (request.resource_version, request.allow_missing);
        let removed = self
            .controller
            .mutate("DeleteVipPool", move |state| {
                state.delete_vip_pool(&name, expected, allow_missing)
            })
            .await?;
        Ok(Response::new(v1::DeleteVipPoolResponse {
            deleted: removed.is_some(),
        }))
    }

    async fn list_vip_pools(
        &self,
        _request: Request<v1::ListVipPoolsRequest>,
    ) -> Result<Response<v1::ListVipPoolsResponse>, Status> {
        let state = self.controller.state();
        Ok(Response::new(v1::ListVipPoolsResponse {
            pools: state
                .vip_pools()
                .values()
                .map(convert::vip_pool_to_proto)
                .collect(),
        }))
    }

    async fn allocate_vip(
        &self,
        request: Request<v1::AllocateVipRequest>,
    ) -> Result<Response<v1::AllocateVipResponse>, Status> {
        let allocate =
            validate::allocate_vip_request(request.get_ref()).map_err(|v| v.to_status())?;
        let allocated = self
            .controller
            .mutate("AllocateVip", move |state| {
                state.allocate_vip(&allocate.pool, &allocate.owner, allocate.requested)
            })
            .await?;
        Ok(Response::new(v1::AllocateVipResponse {
            address: allocated.allocation.address.to_string(),
            newly_allocated: allocated.allocation.newly_allocated,
            resource_version: allocated.resource_version,
        }))
    }

    async fn release_vip(
        &self,
        request: Request<v1::ReleaseVipRequest>,
    ) -> Result<Response<v1::ReleaseVipResponse>, Status> {
        let (pool, target) =
            validate::release_vip_request(request.get_ref()).map_err(|v| v.to_status())?;
        let released = self
            .controller
            .mutate("ReleaseVip", move |state| state.release_vip(&pool, &target))
            .await?;
        Ok(Response::new(v1::ReleaseVipResponse {
            released: released
                .into_iter()
                .map(|(address, owner)| v1::VipAllocation {
                    address: address.to_string(),
                    owner,
                })
                .collect(),
        }))
    }

    async fn apply_snat_pool(
        &self,
        request: Request<v1::ApplySnatPoolRequest>,
    ) -> Result<Response<v1::ApplySnatPoolResponse>, Status> {
        let (spec, expected) =
            validate::apply_snat_pool_request(request.get_ref()).map_err(|v| v.to_status())?;
        let (applied, used_by) = self
            .controller
            .mutate("ApplySnatPool", move |state| {
                let applied = state.apply_snat_pool(spec, expected)?;
                let used_by = state.snat_pool_users(&applied.object.spec.name);
                Ok((applied, used_by))
            })
            .await?;
        Ok(Response::new(v1::ApplySnatPoolResponse {
            pool: Some(convert::snat_pool_to_proto(&applied.object, used_by)),
            changed: applied.changed,
        }))
    }

    async fn delete_snat_pool(
        &self,
        request: Request<v1::DeleteSnatPoolRequest>,
    ) -> Result<Response<v1::DeleteSnatPoolResponse>, Status> {
        let request = request.into_inner();
        let name = validate::object_name(&request.name, "name").map_err(|v| v.to_status())?;
        let (expected, allow_missing) = (request.resource_version, request.allow_missing);
        let removed = self
            .controller
            .mutate("DeleteSnatPool", move |state| {
                state.delete_snat_pool(&name, expected, allow_missing)
            })
            .await?;
        Ok(Response::new(v1::DeleteSnatPoolResponse {
            deleted: removed.is_some(),
        }))
    }

    async fn list_snat_pools(
        &self,
        _request: Request<v1::ListSnatPoolsRequest>,
    ) -> Result<Response<v1::ListSnatPoolsResponse>, Status> {
        let state = self.controller.state();
        Ok(Response::new(v1::ListSnatPoolsResponse {
            pools: state
                .snat_pools()
                .values()
                .map(|pool| {
                    convert::snat_pool_to_proto(pool, state.snat_pool_users(&pool.spec.name))
                })
                .collect(),
        }))
    }
}
