//! What every binary prints for `--version`.

/// The package version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision built (with `-dirty` for uncommitted changes).
pub const GIT_REV: &str = env!("SLUICE_GIT_REV");
/// The DPDK version pkg-config found at build time.
pub const DPDK_VERSION: &str = env!("SLUICE_DPDK_VERSION");
/// `release` or `debug`.
pub const PROFILE: &str = env!("SLUICE_BUILD_PROFILE");

/// The `--version` text: `0.1.0 (git abc123, DPDK 22.11.11, release)`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("SLUICE_GIT_REV"),
    ", DPDK ",
    env!("SLUICE_DPDK_VERSION"),
    ", ",
    env!("SLUICE_BUILD_PROFILE"),
    ")"
);

#[cfg(test)]
mod tests {
    #[test]
    fn long_version_names_the_package_and_dpdk() {
        assert!(super::LONG_VERSION.starts_with(super::VERSION));
        assert!(super::LONG_VERSION.contains("DPDK "));
        assert!(super::LONG_VERSION.contains("git "));
    }
}
