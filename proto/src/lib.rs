//! The `sluice.v1` API. The .proto files and their tonic/prost code come with the daemon issue (#5).
