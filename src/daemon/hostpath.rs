//! The exception path's host side: one `net_tap` interface per port that asks for one
//! (`ports[].host_tap`), created after the port so it can take the port's MAC address, brought
//! up, and given the port's interface addresses (kept in sync with the desired state).
//!
//! The kernel side is configured with the `ip` command (iproute2): `ip link set dev TAP up`
//! and `ip address replace|del ADDR/LEN dev TAP`. Addresses this module did not add are left
//! alone, so an operator may add more (e.g. a management address) by hand.

use super::config::Config;
use super::engine::{mac_string, OpenPort};
use anyhow::{bail, Context, Result};
use controlplane::net::InterfaceAddress;
use controlplane::DesiredState;
use dataplane::dpdk::{Eal, Port, PortConfig, PortInfo};
use dataplane::hostpath::HostPath;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// RX and TX descriptors of each tap queue: the exception path carries management traffic.
pub const TAP_DESCRIPTORS: u16 = 256;

/// A started tap of one port.
#[derive(Debug)]
pub struct HostTap {
    /// Index of the physical port (as in verdicts and the snapshot).
    pub port_index: usize,
    /// Name of the physical port.
    pub port_name: String,
    /// The kernel interface's name.
    pub iface: String,
    pub port: Port,
    pub info: PortInfo,
}

/// Creates, configures and starts the tap of every port that asks for one, with the port's
/// MAC address and `workers` queues each way (net_tap wants as many RX as TX queues), and
/// brings the kernel interface up.
pub fn open_taps(
    eal: &Eal,
    config: &Config,
    ports: &[OpenPort],
    workers: usize,
    pool: &dataplane::dpdk::Mempool,
) -> Result<Vec<HostTap>> {
    let queues = u16::try_from(workers).context("too many workers")?;
    let mut taps = Vec::new();
    for (index, iface) in config.host_taps() {
        let Some(open) = ports.get(index) else {
            bail!("ports[{index}].host_tap: the port was not opened");
        };
        let mac = mac_string(&open.info.mac);
        let mut port = Port::create_vdev(eal, "net_tap", &format!("iface={iface},mac={mac}"))
            .with_context(|| {
                format!(
                    "ports[{index}].host_tap {iface:?}: creating the net_tap device (needs \
                     root or CAP_NET_ADMIN, /dev/net/tun, and no existing interface of that name)"
                )
            })?;
        let cfg = PortConfig {
            rx_queues: queues,
            tx_queues: queues,
            rx_descriptors: TAP_DESCRIPTORS,
            tx_descriptors: TAP_DESCRIPTORS,
            rss: false,
            promiscuous: false,
            mtu: config.ports.get(index).and_then(|p| p.mtu),
            rx_checksum: false,
            tx_fast_free: false,
        };
        let info = port
            .configure(&cfg, pool)
            .with_context(|| format!("ports[{index}].host_tap {iface:?}: configuring the tap"))?;
        port.start()
            .with_context(|| format!("ports[{index}].host_tap {iface:?}: starting the tap"))?;
        ip(&["link", "set", "dev", &iface, "up"])
            .with_context(|| format!("ports[{index}].host_tap {iface:?}: bringing it up"))?;
        tracing::info!(
            port = %open.name,
            tap = %iface,
            port_id = info.id,
            %mac,
            queues,
            "host tap started (exception path)"
        );
        taps.push(HostTap {
            port_index: index,
            port_name: open.name.clone(),
            iface,
            port,
            info,
        });
    }
    Ok(taps)
}

/// The exception path of worker `index` of `workers`: its TX queue on every tap, and (worker
/// 0 only) every RX queue of every tap. `taps[i]` is the tap of port `i`.
pub fn worker_host_path(
    taps: &mut [Option<&mut Port>],
    index: usize,
    workers: usize,
) -> Result<HostPath> {
    let mut host = HostPath::new();
    let q = u16::try_from(index).context("too many workers")?;
    for (port_index, tap) in taps.iter_mut().enumerate() {
        let Some(tap) = tap else { continue };
        let tx = tap
            .tx_queue(q)
            .with_context(|| format!("TX queue {q} of the tap of port {port_index}"))?;
        let rx = if index == 0 {
            (0..workers as u16)
                .map(|r| tap.rx_queue(r))
                .collect::<std::result::Result<Vec<_>, _>>()
                .with_context(|| format!("RX queues of the tap of port {port_index}"))?
        } else {
            Vec::new()
        };
        host.add(port_index as u16, tx, rx);
    }
    Ok(host)
}

/// Runs `ip ARGS...`; an error carries its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running the ip command (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Keeps each tap's kernel addresses equal to its port's interface addresses in the desired
/// state. Remembers what it added, so it removes only those.
#[derive(Debug)]
pub struct AddressSync {
    /// (port name, tap name).
    taps: Vec<(String, String)>,
    applied: BTreeMap<String, BTreeSet<InterfaceAddress>>,
}

impl AddressSync {
    pub fn new(taps: &[HostTap]) -> AddressSync {
        AddressSync {
            taps: taps
                .iter()
                .map(|t| (t.port_name.clone(), t.iface.clone()))
                .collect(),
            applied: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.taps.is_empty()
    }

    /// Adds and removes kernel addresses so each tap has its port's interface addresses.
    /// Failures are logged and retried at the next call.
    pub fn sync(&mut self, state: &DesiredState) {
        for (port, iface) in &self.taps {
            let wanted: BTreeSet<InterfaceAddress> = state
                .interfaces()
                .values()
                .filter(|i| i.spec.port == *port)
                .flat_map(|i| i.spec.addresses.iter().copied())
                .collect();
            let applied = self.applied.entry(iface.clone()).or_default();
            for address in wanted.difference(&applied.clone()) {
                let text = address.to_string();
                match ip(&["address", "replace", &text, "dev", iface]) {
                    Ok(()) => {
                        tracing::info!(tap = %iface, address = %text, "host address added");
                        applied.insert(*address);
                    }
                    Err(e) => {
                        tracing::warn!(tap = %iface, address = %text, error = %e, "cannot add host address")
                    }
                }
            }
            for address in applied.clone().difference(&wanted) {
                let text = address.to_string();
                match ip(&["address", "del", &text, "dev", iface]) {
                    Ok(()) => {
                        tracing::info!(tap = %iface, address = %text, "host address removed");
                        applied.remove(address);
                    }
                    Err(e) => {
                        tracing::warn!(tap = %iface, address = %text, error = %e, "cannot remove host address");
                        // Gone already (e.g. removed by hand): stop tracking it.
                        applied.remove(address);
                    }
                }
            }
        }
    }
}

/// Keeps the taps' kernel addresses in line with the interfaces of the desired state (checked
/// once a second, one pointer compare when nothing changed) until `shutdown` turns true.
pub async fn follow_interfaces(
    controller: controlplane::server::Controller,
    mut sync: AddressSync,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut seen = controller.state();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            return;
        }
        let state = controller.state();
        if std::sync::Arc::ptr_eq(&seen, &state) {
            continue;
        }
        // `ip` runs as a child process: keep it off the async threads.
        sync = match tokio::task::spawn_blocking({
            let state = std::sync::Arc::clone(&state);
            move || {
                sync.sync(&state);
                sync
            }
        })
        .await
        {
            Ok(sync) => sync,
            Err(e) => {
                tracing::error!(error = %e, "host address sync failed");
                return;
            }
        };
        seen = state;
    }
}
