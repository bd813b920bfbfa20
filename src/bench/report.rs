//! Statistics blocks in testpmd's shape, and the same figures as JSON.

use std::fmt::Write as _;

use dataplane::dpdk::PortStats;
use serde::Serialize;

/// One port over one interval.
#[derive(Debug, Clone, Serialize)]
pub struct PortReport {
    pub port: u16,
    pub name: String,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub rx_nombuf: u64,
    pub tx_errors: u64,
    pub rx_pps: f64,
    pub tx_pps: f64,
    pub rx_bps: f64,
    pub tx_bps: f64,
}

impl PortReport {
    /// Totals from `total` and rates from the change since `previous` over `seconds`.
    pub fn new(
        port: u16,
        name: &str,
        total: &PortStats,
        previous: &PortStats,
        seconds: f64,
    ) -> PortReport {
        let rate = |now: u64, before: u64| {
            if seconds > 0.0 {
                now.saturating_sub(before) as f64 / seconds
            } else {
                0.0
            }
        };
        PortReport {
            port,
            name: name.to_owned(),
            rx_packets: total.rx_packets,
            tx_packets: total.tx_packets,
            rx_bytes: total.rx_bytes,
            tx_bytes: total.tx_bytes,
            rx_missed: total.rx_missed,
            rx_errors: total.rx_errors,
            rx_nombuf: total.rx_no_mbuf,
            tx_errors: total.tx_errors,
            rx_pps: rate(total.rx_packets, previous.rx_packets),
            tx_pps: rate(total.tx_packets, previous.tx_packets),
            rx_bps: rate(total.rx_bytes, previous.rx_bytes) * 8.0,
            tx_bps: rate(total.tx_bytes, previous.tx_bytes) * 8.0,
        }
    }

    /// testpmd's "NIC statistics for port N" block.
    pub fn nic_block(&self) -> String {
        let mut s = String::new();
        let title = format!(" NIC statistics for port {} ", self.port);
        let _ = writeln!(s, "\n  {:#^76}", title);
        let _ = writeln!(
            s,
            "  RX-packets: {:<10} RX-missed: {:<10} RX-bytes:  {}",
            self.rx_packets, self.rx_missed, self.rx_bytes
        );
        let _ = writeln!(s, "  RX-errors: {}", self.rx_errors);
        let _ = writeln!(s, "  RX-nombuf:  {:<10}", self.rx_nombuf);
        let _ = writeln!(
            s,
            "  TX-packets: {:<10} TX-errors: {:<10} TX-bytes:  {}",
            self.tx_packets, self.tx_errors, self.tx_bytes
        );
        let _ = writeln!(s, "\n  Throughput (since last show)");
        let _ = writeln!(
            s,
            "  Rx-pps: {:>12.0}          Rx-bps: {:>12.0}",
            self.rx_pps, self.rx_bps
        );
        let _ = writeln!(
            s,
            "  Tx-pps: {:>12.0}          Tx-bps: {:>12.0}",
            self.tx_pps, self.tx_bps
        );
        let _ = writeln!(s, "  {:#<76}", "");
        s
    }
}

/// One forwarding lcore over the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct CoreReport {
    pub lcore: u32,
    pub streams: usize,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub dropped: u64,
    pub mpps: f64,
    /// TSC cycles of the run divided by packets handled: the core polls all the time, so
    /// this is the cost per packet including empty polls.
    pub cycles_per_packet: f64,
    /// Cycles spent in non-empty bursts per packet (only with --record-core-cycles).
    pub busy_cycles_per_packet: Option<f64>,
    /// Load-balancer figures (`--forward-mode=lb` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lb: Option<LbCoreReport>,
}

/// What one lb worker counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LbCoreReport {
    pub new_connections: u64,
    pub connections_per_second: f64,
    pub active_connections: u64,
    pub handoff_out: u64,
    pub handoff_in: u64,
    pub rejects_sent: u64,
    /// Share of the worker's time spent in polls that handled packets or removed expired
    /// connections: near 1 when the worker is the bottleneck, lower when it waits for traffic
    /// (e.g. for the generator).
    pub busy_share: f64,
    /// Packets per poll that handled packets (received and handed over): the burst size the
    /// pipeline sees. Well under the burst when the worker keeps ahead of its traffic, so each
    /// packet carries more of the poll's own cost.
    pub packets_per_busy_poll: f64,
    /// Non-zero drop counters by reason.
    pub drops: std::collections::BTreeMap<&'static str, u64>,
}

/// The final report.
#[derive(Debug, Clone, Serialize)]
pub struct FinalReport {
    pub mode: super::options::ForwardMode,
    pub seconds: f64,
    pub tsc_hz: u64,
    pub ports: Vec<PortReport>,
    pub cores: Vec<CoreReport>,
    pub rx_mpps: f64,
    pub tx_mpps: f64,
    /// Packets the engines handled (received, or generated in txonly), per second, in millions.
    pub fwd_mpps: f64,
    pub dropped: u64,
    /// What `--lb-generate`'s generator sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator: Option<super::lbgen::GeneratorReport>,
}

impl FinalReport {
    /// testpmd's closing blocks plus a throughput summary.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let (mut rx, mut tx, mut missed) = (0u64, 0u64, 0u64);
        for p in &self.ports {
            let title = format!(" Forward statistics for port {} ", p.port);
            let _ = writeln!(s, "\n  {:-^76}", title);
            let _ = writeln!(
                s,
                "  RX-packets: {:<14} RX-dropped: {:<14} RX-total: {}",
                p.rx_packets,
                p.rx_missed,
                p.rx_packets + p.rx_missed
            );
            let _ = writeln!(
                s,
                "  TX-packets: {:<14} TX-dropped: {:<14} TX-total: {}",
                p.tx_packets,
                p.tx_errors,
                p.tx_packets + p.tx_errors
            );
            let _ = writeln!(s, "  {:-<76}", "");
            rx += p.rx_packets;
            tx += p.tx_packets;
            missed += p.rx_missed;
        }
        let _ = writeln!(
            s,
            "\n  {:+^76}",
            " Accumulated forward statistics for all ports "
        );
        let _ = writeln!(
            s,
            "  RX-packets: {:<14} RX-dropped: {:<14} RX-total: {}",
            rx,
            missed,
            rx + missed
        );
        let _ = writeln!(
            s,
            "  TX-packets: {:<14} TX-dropped: {:<14} TX-total: {}",
            tx,
            self.dropped,
            tx + self.dropped
        );
        let _ = writeln!(s, "  {:+<76}", "");
        for c in &self.cores {
            let _ = write!(
                s,
                "\n  lcore {}: {} stream(s), {:.3} Mpps, CPU cycles/packet={:.2}",
                c.lcore, c.streams, c.mpps, c.cycles_per_packet
            );
            if let Some(busy) = c.busy_cycles_per_packet {
                let _ = write!(s, " (busy {:.2})", busy);
            }
            let _ = write!(s, " at {:.0} MHz", self.tsc_hz as f64 / 1e6);
            if let Some(lb) = &c.lb {
                let _ = write!(
                    s,
                    "\n    connections: {} new ({:.0}/s), {} open; handoff out {} in {}; rejects {}; \
                     busy {:.1}%, {:.1} packets per busy poll",
                    lb.new_connections,
                    lb.connections_per_second,
                    lb.active_connections,
                    lb.handoff_out,
                    lb.handoff_in,
                    lb.rejects_sent,
                    lb.busy_share * 100.0,
                    lb.packets_per_busy_poll
                );
                for (reason, n) in &lb.drops {
                    let _ = write!(s, "\n    dropped {reason}: {n}");
                }
            }
        }
        if let Some(g) = &self.generator {
            let _ = write!(
                s,
                "\n\n  generator: {} frames sent ({} opened fresh connections), {} returned, {} never taken",
                g.sent, g.fresh_connections, g.returned, g.unsent
            );
        }
        let _ = writeln!(
            s,
            "\n\n  Throughput over {:.2} s: RX {:.3} Mpps, TX {:.3} Mpps, forwarded {:.3} Mpps\n",
            self.seconds, self.rx_mpps, self.tx_mpps, self.fwd_mpps
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nic_block_has_testpmd_lines_and_rates() {
        let now = PortStats {
            rx_packets: 3_000_000,
            tx_packets: 2_000_000,
            ..Default::default()
        };
        let before = PortStats {
            rx_packets: 1_000_000,
            ..Default::default()
        };
        let r = PortReport::new(0, "net_null0", &now, &before, 2.0);
        assert_eq!(r.rx_pps, 1_000_000.0);
        assert_eq!(r.tx_pps, 1_000_000.0);
        let text = r.nic_block();
        assert!(text.contains("NIC statistics for port 0"));
        assert!(text.contains("Rx-pps:      1000000"), "{text}");
        assert!(text.contains("RX-packets: 3000000"));
    }
}
