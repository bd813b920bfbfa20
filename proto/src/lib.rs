//! The `sluice.v1` gRPC API of the Sluice load balancer: prost messages and tonic clients and
//! servers generated from `proto/sluice/v1/*.proto` (the documentation of every message, field
//! and error lives in those files and is copied onto the generated items).
//!
//! The API is split into five gRPC services:
//! - [`v1::services_server::Services`]: declarative services and backends, watch;
//! - [`v1::pools_server::Pools`]: VIP pools (IPAM) and SNAT pools;
//! - [`v1::network_server::Network`]: interface addresses, static routes and neighbours;
//! - [`v1::observability_server::Observability`]: stats, connections, status;
//! - [`v1::l7_server::L7`]: the HTTP/HTTPS route table of `sluice-proxy` (served by the proxy,
//!   not by `sluiced`).
//!
//! [`FILE_DESCRIPTOR_SET`] is the encoded descriptor set of all of them (imports included)
//! for gRPC server reflection (`tonic-reflection`), so `grpcurl` works without .proto files.

/// Package `sluice.v1`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]
pub mod v1 {
    tonic::include_proto!("sluice.v1");
}

/// The protobuf package every message and service of this crate lives in.
pub const PACKAGE: &str = "sluice.v1";

/// Fully qualified names of the gRPC services `sluiced` serves, e.g. for the gRPC health service
/// (one status per service) and for reflection listings.
pub const SERVICE_NAMES: [&str; 4] = [
    "sluice.v1.Services",
    "sluice.v1.Pools",
    "sluice.v1.Network",
    "sluice.v1.Observability",
];

/// The encoded `google.protobuf.FileDescriptorSet` of `sluice/v1/*.proto` and the files they
/// import. Register it with `tonic_reflection::server::Builder::register_encoded_file_descriptor_set`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sluice_v1_descriptor.bin"));

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use prost_types::FileDescriptorSet;

    fn descriptor_set() -> FileDescriptorSet {
        FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("the embedded descriptor decodes")
    }

    #[test]
    fn descriptor_set_has_the_package_and_every_service() {
        let set = descriptor_set();
        let services: Vec<String> = set
            .file
            .iter()
            .filter(|file| file.package() == PACKAGE)
            .flat_map(|file| {
                file.service
                    .iter()
                    .map(|s| format!("{PACKAGE}.{}", s.name()))
            })
            .collect();
        let mut expected = SERVICE_NAMES.map(String::from).to_vec();
        expected.push(format!("{PACKAGE}.L7"));
        expected.sort();
        let mut found = services.clone();
        found.sort();
        assert_eq!(found, expected);
    }

    #[test]
    fn descriptor_set_includes_imports_for_reflection() {
        let set = descriptor_set();
        let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
        for needed in [
            "sluice/v1/common.proto",
            "sluice/v1/services.proto",
            "google/protobuf/duration.proto",
            "google/protobuf/timestamp.proto",
        ] {
            assert!(names.contains(&needed), "{needed} missing from {names:?}");
        }
    }

    #[test]
    fn services_rpcs_are_present() {
        let set = descriptor_set();
        let services = set
            .file
            .iter()
            .flat_map(|f| f.service.iter())
            .find(|s| s.name() == "Services")
            .expect("Services service");
        let methods: Vec<&str> = services.method.iter().map(|m| m.name()).collect();
        for rpc in [
            "ApplyService",
            "ApplyServices",
            "DeleteService",
            "GetService",
            "ListServices",
            "WatchServices",
            "PatchBackends",
        ] {
            assert!(methods.contains(&rpc), "{rpc} missing from {methods:?}");
        }
        let watch = services
            .method
            .iter()
            .find(|m| m.name() == "WatchServices")
            .expect("WatchServices");
        assert!(watch.server_streaming(), "WatchServices streams events");
    }

    #[test]
    fn optional_fields_keep_presence() {
        // Weight 0 (takes no new connections) must be distinguishable from unset (weight 1).
        let unset = v1::Backend::default();
        let zero = v1::Backend {
            weight: Some(0),
            ..v1::Backend::default()
        };
        let decoded = v1::Backend::decode(zero.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(decoded.weight, Some(0));
        assert_eq!(unset.weight, None);
    }
}
