//! Command line of `sluice-bench`: testpmd's shape, `<EAL args> -- <bench options>`.

use clap::{Parser, ValueEnum};

/// What each forwarding stream does with a burst (testpmd's `--forward-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardMode {
    /// Forward packets unchanged to the peer port.
    Io,
    /// Swap source and destination MAC addresses, then forward.
    Macswap,
    /// Receive and free.
    Rxonly,
    /// Generate packets (see --txpkts, --txflows) and send them; receive nothing.
    Txonly,
    /// Swap MAC addresses, IP addresses and L4 ports (testpmd's 5tswap), then forward.
    #[value(name = "5tswap")]
    #[serde(rename = "5tswap")]
    FiveTupleSwap,
    /// The full Sluice pipeline: parse, connection table, Maglev, NAT rewrite, next hop. The
    /// service is VIP --lb-vip port --lb-port (TCP and UDP) with --lb-backends backends.
    Lb,
}

/// Translation mode of the `lb` benchmark's service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LbNat {
    Dnat,
    Fullnat,
}

/// How RX ports map to TX ports (testpmd's `--port-topology`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortTopology {
    /// 0<->1, 2<->3, ...
    Paired,
    /// 0->1->2->...->0
    Chained,
    /// Each port sends back out of itself.
    Loop,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "sluice-bench",
    version = crate::build_info::LONG_VERSION,
    about = "testpmd-style forwarding benchmark for Sluice's fast path",
    long_about = "testpmd-style forwarding benchmark for Sluice's fast path.\n\n\
        Usage is testpmd's: EAL arguments first, then `--`, then the options below, e.g.\n  \
        sluice-bench -l 0,1 --no-huge -m 512 --no-shconf --vdev net_null0 --vdev net_null1 -- \\\n    \
        --forward-mode=io --stats-period 1 --duration 10"
)]
pub struct BenchOptions {
    /// Forwarding engine.
    #[arg(long, value_enum, default_value = "io")]
    pub forward_mode: ForwardMode,
    /// Number of forwarding lcores (taken from the EAL lcores after the main one).
    #[arg(long, default_value_t = 1)]
    pub nb_cores: usize,
    /// Packets per RX/TX burst (1..=32).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub burst: u16,
    /// RX queues per port.
    #[arg(long, default_value_t = 1)]
    pub rxq: u16,
    /// TX queues per port.
    #[arg(long, default_value_t = 1)]
    pub txq: u16,
    /// RX descriptors per queue.
    #[arg(long, default_value_t = 1024)]
    pub rxd: u16,
    /// TX descriptors per queue.
    #[arg(long, default_value_t = 1024)]
    pub txd: u16,
    #[arg(long, value_enum, default_value = "paired")]
    pub port_topology: PortTopology,
    /// Only use these port ids (comma-separated); default: every probed port.
    #[arg(long, value_delimiter = ',')]
    pub portlist: Option<Vec<u16>>,
    /// txonly and --lb-generate: frame length in bytes, without FCS (42..=1514).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(42..=1514))]
    pub txpkts: u16,
    /// txonly: number of distinct flows (UDP source ports) generated.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub txflows: u32,
    /// Print statistics every N seconds (0: only at the end).
    #[arg(long, default_value_t = 0)]
    pub stats_period: u64,
    /// Stop after N seconds (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Mbufs in the packet pool (default: sized from ports, queues and descriptors).
    #[arg(long)]
    pub total_num_mbufs: Option<u32>,
    /// Data room per mbuf, headroom included.
    #[arg(long, default_value_t = 2176)]
    pub mbuf_size: u16,
    /// Measure busy cycles (TSC around each non-empty burst), as testpmd's
    /// --record-core-cycles; costs a little per burst.
    #[arg(long)]
    pub record_core_cycles: bool,
    /// Print statistics as JSON (one object per period, then the final report).
    #[arg(long)]
    pub json: bool,
    /// lb: the service address (workload W1 sends to 198.18.100.10:80); an IPv6 address makes
    /// the service, its backends and the generator's traffic IPv6.
    #[arg(long, default_value = "198.18.100.10")]
    pub lb_vip: std::net::IpAddr,
    /// lb: the service port (TCP and UDP).
    #[arg(long, default_value_t = 80)]
    pub lb_port: u16,
    /// lb: number of backends (198.19.0.1.. port 8080, weight 1).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub lb_backends: u16,
    /// lb: DNAT or full-NAT (SNAT pool 198.19.255.1-4).
    #[arg(long, value_enum, default_value = "dnat")]
    pub lb_nat: LbNat,
    /// lb: connection-table capacity per worker.
    #[arg(long, default_value_t = 1 << 20)]
    pub lb_conn_capacity: u32,
    /// lb: feed the workers from a built-in traffic generator over an in-process `net_ring`
    /// pair instead of the EAL's ports (no --vdev needed): --lb-flows established flows, a
    /// --lb-new-share of packets opening fresh connections, --lb-udp-share UDP, --txpkts bytes.
    #[arg(long)]
    pub lb_generate: bool,
    /// lb generator: established flows, each opened once and then sent to in turn.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    pub lb_flows: u32,
    /// lb generator: share of packets (0..=1) that open a connection from a fresh client
    /// address and port (a TCP SYN, or a UDP flow's first datagram).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub lb_new_share: f64,
    /// lb generator: share of flows (0..=1) that are UDP (the rest are TCP).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub lb_udp_share: f64,
    /// lb: the clients' frames carry an 802.1Q tag with this VLAN id (1..=4094): the generator
    /// tags what it sends, and every port of the workers gets a VLAN sub-interface for it. The
    /// backends stay untagged, so the workers pop the tag on the way to them.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=4094))]
    pub lb_vlan: Option<u16>,
    /// lb: every connection-tracking timeout in milliseconds (default: the daemon's, e.g.
    /// 120 s for a SYN). New-connection runs need short ones, or the table fills with
    /// half-open flows that no backend answers.
    #[arg(long)]
    pub lb_timeout_ms: Option<u32>,
}

/// A share between 0 and 1.
fn share(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0 and 1"))
    }
}

/// Splits a testpmd-style argument vector at the first `--`: (EAL args with argv[0], the
/// bench's own args with argv[0]).
pub fn split_args(args: &[String]) -> (Vec<String>, Vec<String>) {
    let program = args
        .first()
        .cloned()
        .unwrap_or_else(|| "sluice-bench".into());
    let rest = args.get(1..).unwrap_or_default();
    match rest.iter().position(|a| a == "--") {
        Some(i) => {
            let mut eal = vec![program.clone()];
            eal.extend_from_slice(&rest[..i]);
            let mut app = vec![program];
            app.extend_from_slice(&rest[i + 1..]);
            (eal, app)
        }
        None => {
            // Without `--`, everything is EAL args unless it is a plain --help/--version.
            if rest
                .iter()
                .any(|a| a == "--help" || a == "-h" || a == "--version" || a == "-V")
            {
                (
                    vec![program.clone()],
                    std::iter::once(program)
                        .chain(rest.iter().cloned())
                        .collect(),
                )
            } else {
                let mut eal = vec![program.clone()];
                eal.extend_from_slice(rest);
                (eal, vec![program])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn splits_like_testpmd() {
        let (eal, app) = split_args(&strings(&[
            "b",
            "-l",
            "0,1",
            "--no-huge",
            "--",
            "--forward-mode=io",
        ]));
        assert_eq!(eal, strings(&["b", "-l", "0,1", "--no-huge"]));
        assert_eq!(app, strings(&["b", "--forward-mode=io"]));
        let opts = BenchOptions::try_parse_from(app).unwrap();
        assert_eq!(opts.forward_mode, ForwardMode::Io);
    }

    #[test]
    fn generator_shares_are_checked() {
        let opts = BenchOptions::try_parse_from([
            "b",
            "--lb-generate",
            "--lb-new-share",
            "0.25",
            "--lb-udp-share",
            "1",
        ])
        .unwrap();
        assert!(opts.lb_generate);
        assert_eq!((opts.lb_new_share, opts.lb_udp_share), (0.25, 1.0));
        assert!(BenchOptions::try_parse_from(["b", "--lb-new-share", "1.5"]).is_err());
        assert!(BenchOptions::try_parse_from(["b", "--lb-udp-share", "-0.1"]).is_err());
        assert!(BenchOptions::try_parse_from(["b", "--lb-flows", "0"]).is_err());
    }

    #[test]
    fn rejects_out_of_range_burst_and_sizes() {
        assert!(BenchOptions::try_parse_from(["b", "--burst", "64"]).is_err());
        assert!(BenchOptions::try_parse_from(["b", "--txpkts", "20"]).is_err());
        assert!(BenchOptions::try_parse_from(["b", "--forward-mode", "bogus"]).is_err());
    }

    #[test]
    fn version_only_needs_no_eal() {
        let (eal, app) = split_args(&strings(&["b", "--version"]));
        assert_eq!(eal, strings(&["b"]));
        assert_eq!(app, strings(&["b", "--version"]));
    }
}
