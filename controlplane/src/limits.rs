//! Size limits of the desired state and of requests. They bound memory, the size of the state
//! file and the work one request can cause; they are part of the API contract (documented in
//! the .proto files) and exceeding one is INVALID_ARGUMENT (per request) or RESOURCE_EXHAUSTED
//! (state totals).

use core::time::Duration;

/// Services in the state: 100,000 x 8 backends compile in about a second in release builds.
pub const MAX_SERVICES: usize = 100_000;
/// Backends per service. The dataplane allows 65535, but a 4096-backend Maglev table is
/// already 800 KiB and rebuilt on each change; beyond that, split the service.
pub const MAX_BACKENDS_PER_SERVICE: usize = 4096;
/// Backends of all services together; backend counter slots stay below this.
pub const MAX_BACKENDS_TOTAL: usize = 1_000_000;
/// Services per ApplyServices call: 10,000 x 8 backends is about 2.5 MB, inside gRPC's
/// default 4 MiB message limit.
pub const MAX_APPLY_BATCH: usize = 10_000;
/// Labels per service.
pub const MAX_LABELS: usize = 64;
/// Length of object names (DNS-1123 subdomain).
pub const MAX_NAME_LEN: usize = 253;
/// Length of one dot-separated label of a name, and of a label key's name part and value.
pub const MAX_NAME_LABEL_LEN: usize = 63;
/// Length of an AllocateVip owner.
pub const MAX_OWNER_LEN: usize = 253;

/// Backend weights: the Gateway API's limit for `backendRefs[].weight`.
pub const MAX_WEIGHT: u32 = dataplane::snapshot::MAX_WEIGHT;
/// Weight of a backend that does not set one.
pub const DEFAULT_WEIGHT: u32 = 1;

pub const MAX_VIP_POOLS: usize = 1024;
pub const MAX_VIP_POOL_CIDRS: usize = 256;
pub const MAX_VIP_POOL_EXCLUSIONS: usize = 4096;
pub const MAX_SNAT_POOLS: usize = 1024;
/// Addresses per SNAT pool; each carries 64K source ports per backend endpoint.
pub const MAX_SNAT_POOL_ADDRESSES: usize = 1024;
pub const MAX_INTERFACES: usize = 256;
pub const MAX_INTERFACE_ADDRESSES: usize = 256;
pub const MAX_ROUTES: usize = 65_536;
pub const MAX_NEIGHBOURS: usize = 65_536;

/// Health-check bounds and defaults.
pub const MIN_HEALTH_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_HEALTH_INTERVAL: Duration = Duration::from_secs(3600);
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
pub const MIN_HEALTH_TIMEOUT: Duration = Duration::from_millis(100);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
pub const MAX_HEALTH_THRESHOLD: u32 = 100;
pub const DEFAULT_HEALTH_RISE: u32 = 2;
pub const DEFAULT_HEALTH_FALL: u32 = 3;
pub const DEFAULT_HTTP_PATH: &str = "/";
pub const DEFAULT_HTTP_STATUS: u16 = 200;
pub const MAX_HTTP_PATH_LEN: usize = 1024;
pub const MAX_HTTP_HOST_LEN: usize = 253;
pub const MAX_UDP_PAYLOAD: usize = 1024;
