//! Finds the system DPDK with pkg-config, generates bindings with bindgen and compiles the shim
//! with DPDK's own cflags.

use std::env;
use std::path::PathBuf;

const INSTALL_HINT: &str = "DPDK development files were not found by pkg-config (libdpdk).\n\
     On Debian 12 install them with:\n    \
     apt-get install dpdk-dev libclang-dev pkg-config\n\
     or run scripts/setup.sh, which installs everything Sluice needs.";

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let dpdk = match pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(err) => panic!("\n\n{INSTALL_HINT}\n\npkg-config said: {err}\n"),
    };

    // rte_vdev_init/uninit (creating vdevs at run time) live in the vdev bus driver, which
    // libdpdk.pc does not list; it sits beside the other libraries.
    println!("cargo:rustc-link-lib=dylib=rte_bus_vdev");
    // rte_eth_from_rings (port pairs over rings, for tests and benchmarks) is in the ring PMD.
    println!("cargo:rustc-link-lib=dylib=rte_net_ring");

    // DPDK's cflags carry -include rte_config.h and the -march it was built for; the shim and
    // bindgen must see the same definitions as the installed libraries.
    let cflags = pkg_config_cflags();

    let mut shim = cc::Build::new();
    shim.file("shim/shim.c").opt_level(3).warnings(false);
    for path in &dpdk.include_paths {
        shim.include(path);
    }
    for flag in &cflags {
        if !flag.starts_with("-I") {
            shim.flag(flag);
        }
    }
    shim.compile("sluice_dpdk_shim");

    let mut builder = bindgen::Builder::default()
        .header("shim/shim.h")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("rte_(eal|eth|pktmbuf|mempool|ring|lcore|strerror|socket|vdev|dev|flow|get_main|log|exit).*")
        .allowlist_function("sluice_.*")
        .allowlist_type("rte_(eth|mbuf|mempool|ring|flow|ether).*")
        .allowlist_var("RTE_(ETH|MBUF|PKTMBUF|MEMPOOL|RING|MAX|LCORE|ETHER|PTYPE|LOG|EAL|FLOW|DEV|VERSION).*")
        // Packed-and-aligned structs that Rust rejects (E0588); we never touch them.
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_flow_item_(l2tpv2|gtp_psc|arp_eth_ipv4)")
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .size_t_is_usize(true);
    for path in &dpdk.include_paths {
        builder = builder.clang_arg(format!("-I{}", path.display()));
    }
    for flag in &cflags {
        if flag.starts_with("-include") || flag.starts_with("-D") || flag.starts_with("-m") {
            builder = builder.clang_arg(flag);
        }
    }
    let bindings = builder
        .generate()
        .expect("bindgen failed on DPDK headers (is libclang-dev installed?)");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("bindings.rs");
    bindings.write_to_file(&out).expect("write bindings");

    let version = pkg_config::get_variable("libdpdk", "version")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(dpdk_modversion)
        .unwrap_or_else(|| "unknown".into());
    // Dependent build scripts read this as DEP_DPDK_VERSION.
    println!("cargo:version={version}");
    println!("cargo:rustc-env=SLUICE_DPDK_VERSION={version}");
}

fn pkg_config_cflags() -> Vec<String> {
    let out = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("run pkg-config");
    // "-include rte_config.h" arrives as two words; keep them together.
    let mut flags: Vec<String> = Vec::new();
    let mut words = String::from_utf8_lossy(&out.stdout).into_owned();
    words = words.replace("-include ", "-include");
    for word in words.split_whitespace() {
        flags.push(word.to_owned());
    }
    flags
}

fn dpdk_modversion() -> Option<String> {
    let out = std::process::Command::new("pkg-config")
        .args(["--modversion", "libdpdk"])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!v.is_empty()).then_some(v)
}
