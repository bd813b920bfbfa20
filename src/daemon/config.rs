//! sluiced's configuration: one TOML file (see `sluiced.example.toml` at the repository root
//! for every setting and its default), with command-line flags that override it.
//!
//! Unknown keys are errors, so a typo is not silently ignored. Objects of the desired state
//! can be declared too (`[[interfaces]]`, `[[routes]]`, `[[neighbours]]`, `[[snat_pools]]`,
//! `[[vip_pools]]`): at every start they are applied to the persisted state like API calls
//! with the same content (validated the same way), so the file wins over earlier API changes
//! to those objects; objects the file does not name are left alone.

use anyhow::{bail, Context, Result};
use clap::Parser;
use dataplane::conntrack::Timeouts;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Default path of the configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/sluice/sluiced.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/sluice";
pub const DEFAULT_API_SOCKET: &str = "/run/sluice/sluiced.sock";
pub const DEFAULT_API_TCP: &str = "127.0.0.1:50051";
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9100";

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub eal: EalConfig,
    #[serde(default)]
    pub ports: Vec<PortConfig>,
    #[serde(default)]
    pub workers: WorkersConfig,
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub interfaces: Vec<InterfaceConfig>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub neighbours: Vec<NeighbourConfig>,
    #[serde(default)]
    pub snat_pools: Vec<SnatPoolConfig>,
    #[serde(default)]
    pub vip_pools: Vec<VipPoolConfig>,
}

/// DPDK's environment abstraction layer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EalConfig {
    /// `-l`: the lcores; the first is the main lcore (control plane), the others run workers.
    pub lcores: Option<String>,
    /// `-m`: memory in MB.
    pub memory_mb: Option<u32>,
    /// `--no-huge`: run on ordinary pages (tests, small appliances).
    #[serde(default)]
    pub no_huge: bool,
    /// `--no-shconf`: no shared runtime files (several DPDK processes at once).
    #[serde(default)]
    pub no_shconf: bool,
    /// `--file-prefix`.
    pub file_prefix: Option<String>,
    /// `--no-pci`: do not probe PCI devices (vdev-only setups).
    #[serde(default)]
    pub no_pci: bool,
    /// `--log-level`, e.g. "notice".
    pub log_level: Option<String>,
    /// Any other EAL arguments, passed as given.
    #[serde(default)]
    pub extra_args: Vec<String>,
}

/// One DPDK port.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// The name the API uses (interfaces, routes, neighbours).
    pub name: String,
    /// A PCI address ("0000:01:00.0") or a virtual device spec
    /// ("net_af_packet0,iface=veth0", "net_null0", "net_ring0").
    pub device: String,
    /// RX queues (RSS spreads flows over them). Default: one per worker.
    pub rx_queues: Option<u16>,
    #[serde(default = "default_descriptors")]
    pub rx_descriptors: u16,
    #[serde(default = "default_descriptors")]
    pub tx_descriptors: u16,
    pub mtu: Option<u16>,
    #[serde(default = "yes")]
    pub promiscuous: bool,
    /// Name of the host kernel's interface for this port (the exception path, a `net_tap`
    /// with the port's MAC address and the port's interface addresses), e.g. "sl-client".
    /// Unset: no exception path; traffic to the port's addresses that the dataplane does not
    /// answer itself is dropped (`no_host_path`).
    #[serde(default)]
    pub host_tap: Option<String>,
}

fn default_descriptors() -> u16 {
    1024
}

fn yes() -> bool {
    true
}

/// The worker cores.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersConfig {
    /// Workers to run. Default: one per EAL worker lcore (or per entry of `lcores`).
    pub count: Option<u16>,
    /// Lcores to run them on. Default: the EAL's worker lcores in order.
    pub lcores: Option<Vec<u32>>,
}

/// Sizes of the packet path (all preallocated at start).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataplaneConfig {
    /// Connections each worker can track.
    pub conn_capacity: u32,
    /// Full-NAT source ports, split among the workers: "first-last".
    pub snat_ports: String,
    /// Mbufs in the packet pool. Default: from the ports' descriptors and the workers.
    pub mbufs: Option<u32>,
    /// Data room of each mbuf, headroom included.
    pub mbuf_size: u16,
    /// Accept TCP flows first seen mid-stream (after a restart or failover).
    pub midstream_pickup: bool,
    /// Entries of each worker-to-worker handoff ring (a power of two).
    pub handoff_ring_size: u32,
    /// Counter slots for services and for backends (of all services together).
    pub service_counter_slots: u32,
    pub backend_counter_slots: u32,
    /// Connection-tracking idle timeouts.
    pub timeouts: TimeoutsConfig,
}

/// Connection-tracking idle timeouts per state, in seconds (fractions allowed, at least a
/// millisecond); the defaults are [`Timeouts::DEFAULT`]'s.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutsConfig {
    pub tcp_syn: f64,
    pub tcp_established: f64,
    pub tcp_fin: f64,
    pub tcp_time_wait: f64,
    pub tcp_close: f64,
    pub udp: f64,
    pub udp_stream: f64,
    pub icmp: f64,
    pub embryonic_under_pressure: f64,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        let t = Timeouts::DEFAULT;
        let secs = |ms: u32| f64::from(ms) / 1000.0;
        TimeoutsConfig {
            tcp_syn: secs(t.tcp_syn),
            tcp_established: secs(t.tcp_established),
            tcp_fin: secs(t.tcp_fin),
            tcp_time_wait: secs(t.tcp_time_wait),
            tcp_close: secs(t.tcp_close),
            udp: secs(t.udp),
            udp_stream: secs(t.udp_stream),
            icmp: secs(t.icmp),
            embryonic_under_pressure: secs(t.embryonic_under_pressure),
        }
    }
}

impl TimeoutsConfig {
    /// Every timeout with its name, as in `[dataplane.timeouts]` and `--timeout NAME=SECONDS`.
    fn by_names(&mut self) -> [(&'static str, &mut f64); 9] {
        [
            ("tcp_syn", &mut self.tcp_syn),
            ("tcp_established", &mut self.tcp_established),
            ("tcp_fin", &mut self.tcp_fin),
            ("tcp_time_wait", &mut self.tcp_time_wait),
            ("tcp_close", &mut self.tcp_close),
            ("udp", &mut self.udp),
            ("udp_stream", &mut self.udp_stream),
            ("icmp", &mut self.icmp),
            (
                "embryonic_under_pressure",
                &mut self.embryonic_under_pressure,
            ),
        ]
    }

    /// The timeouts' names.
    pub fn names() -> [&'static str; 9] {
        TimeoutsConfig::default().by_names().map(|(name, _)| name)
    }

    /// Applies one `--timeout NAME=SECONDS` (the range is checked with the rest, by
    /// [`TimeoutsConfig::to_timeouts`]).
    fn set_from_arg(&mut self, spec: &str) -> Result<()> {
        let Some((name, secs)) = spec.split_once('=') else {
            bail!("--timeout {spec:?}: expected NAME=SECONDS, e.g. tcp_established=300");
        };
        let Ok(secs) = secs.trim().parse::<f64>() else {
            bail!("--timeout {spec:?}: {secs:?} is not a number of seconds");
        };
        let Some((_, timeout)) = self
            .by_names()
            .into_iter()
            .find(|(known, _)| *known == name.trim())
        else {
            bail!(
                "--timeout {spec:?}: no timeout named {name:?} (one of {})",
                Self::names().join(", ")
            );
        };
        *timeout = secs;
        Ok(())
    }

    /// The timeouts in the dataplane's milliseconds; an error names the first value that is
    /// not between a millisecond and [`Timeouts::MAX`] (about 24.8 days).
    pub fn to_timeouts(&self) -> Result<Timeouts> {
        let ms = |name: &str, secs: f64| -> Result<u32> {
            let ms = (secs * 1000.0).round();
            if !(1.0..=f64::from(Timeouts::MAX)).contains(&ms) {
                bail!(
                    "dataplane.timeouts.{name}: {secs} s is out of range (0.001 to {} s)",
                    Timeouts::MAX / 1000
                );
            }
            Ok(ms as u32)
        };
        Ok(Timeouts {
            tcp_syn: ms("tcp_syn", self.tcp_syn)?,
            tcp_established: ms("tcp_established", self.tcp_established)?,
            tcp_fin: ms("tcp_fin", self.tcp_fin)?,
            tcp_time_wait: ms("tcp_time_wait", self.tcp_time_wait)?,
            tcp_close: ms("tcp_close", self.tcp_close)?,
            udp: ms("udp", self.udp)?,
            udp_stream: ms("udp_stream", self.udp_stream)?,
            icmp: ms("icmp", self.icmp)?,
            embryonic_under_pressure: ms(
                "embryonic_under_pressure",
                self.embryonic_under_pressure,
            )?,
        })
    }
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            conn_capacity: 1 << 18,
            snat_ports: "1024-65535".into(),
            mbufs: None,
            mbuf_size: 2176,
            midstream_pickup: true,
            handoff_ring_size: 4096,
            service_counter_slots: controlplane::limits::MAX_SERVICES as u32,
            backend_counter_slots: controlplane::limits::MAX_BACKENDS_TOTAL as u32,
            timeouts: TimeoutsConfig::default(),
        }
    }
}

impl DataplaneConfig {
    /// The SNAT port range.
    pub fn snat_range(&self) -> Result<(u16, u16)> {
        let parse = |s: &str| -> Result<u16> {
            s.trim()
                .parse::<u16>()
                .with_context(|| format!("dataplane.snat_ports: {s:?} is not a port"))
        };
        let Some((first, last)) = self.snat_ports.split_once('-') else {
            bail!(
                "dataplane.snat_ports: {:?} is not \"first-last\"",
                self.snat_ports
            );
        };
        let (first, last) = (parse(first)?, parse(last)?);
        if first == 0 || first > last {
            bail!(
                "dataplane.snat_ports: {:?} must be an increasing range of non-zero ports",
                self.snat_ports
            );
        }
        Ok((first, last))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// Where the desired state is persisted (`state.json`) and locked.
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: PathBuf::from(DEFAULT_STATE_DIR),
        }
    }
}

/// The gRPC API.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Unix socket path; "" disables it.
    pub unix_socket: String,
    /// File mode of the socket (octal text); who may program the appliance locally.
    pub unix_socket_mode: String,
    /// TCP address; "" disables it.
    pub tcp: String,
    /// File whose content (trimmed) TCP clients must send as `authorization: Bearer <token>`.
    pub bearer_token_file: Option<PathBuf>,
    pub tls: Option<TlsConfig>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            unix_socket: DEFAULT_API_SOCKET.into(),
            unix_socket_mode: "0660".into(),
            tcp: DEFAULT_API_TCP.into(),
            bearer_token_file: None,
            tls: None,
        }
    }
}

/// TLS of the TCP listener (PEM files).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Require client certificates signed by this CA.
    pub client_ca: Option<PathBuf>,
}

/// The admin HTTP endpoint (`/metrics`, `/livez`, `/readyz`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// TCP address; "" disables it.
    pub listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: DEFAULT_ADMIN.into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceConfig {
    pub port: String,
    pub addresses: Vec<String>,
    /// An 802.1Q VLAN sub-interface of `port` (1..=4094): its name is `PORT.VLAN` (e.g.
    /// "backends.100"), which routes, neighbours and the API use like a port name.
    #[serde(default)]
    pub vlan: Option<u16>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub prefix: String,
    #[serde(default)]
    pub next_hop: String,
    pub port: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighbourConfig {
    pub address: String,
    pub mac: String,
    pub port: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnatPoolConfig {
    pub name: String,
    pub addresses: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VipPoolConfig {
    pub name: String,
    pub cidrs: Vec<String>,
    #[serde(default)]
    pub excluded_addresses: Vec<String>,
}

/// `sluiced`'s command line. Every flag overrides the matching setting of the file.
#[derive(Clone, Debug, Default, Parser)]
#[command(
    name = "sluiced",
    version = sluice_version(),
    about = "Sluice appliance daemon: DPDK L4 load balancer and NAT, programmed over gRPC (sluice.v1)"
)]
pub struct Args {
    /// Configuration file. Default: /etc/sluice/sluiced.toml if it exists, else built-in
    /// defaults.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Parse and check the configuration, print it, and exit.
    #[arg(long)]
    pub check_config: bool,
    /// State directory (state.json and its lock).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// API Unix socket ("" disables).
    #[arg(long, value_name = "PATH")]
    pub api_socket: Option<String>,
    /// API TCP address ("" disables).
    #[arg(long, value_name = "ADDR")]
    pub api_tcp: Option<String>,
    /// Admin HTTP address ("" disables).
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,
    /// A port, as NAME=DEVICE (PCI address or vdev spec); repeat for more. Replaces the file's
    /// ports.
    #[arg(long = "port", value_name = "NAME=DEVICE")]
    pub ports: Vec<String>,
    /// EAL lcores (`-l`); the first is the main lcore.
    #[arg(long, value_name = "LIST")]
    pub lcores: Option<String>,
    /// EAL memory in MB (`-m`).
    #[arg(long, value_name = "MB")]
    pub memory_mb: Option<u32>,
    /// Run DPDK without hugepages.
    #[arg(long)]
    pub no_huge: bool,
    /// No DPDK shared runtime files.
    #[arg(long)]
    pub no_shconf: bool,
    /// Do not probe PCI devices.
    #[arg(long)]
    pub no_pci: bool,
    /// DPDK file prefix.
    #[arg(long, value_name = "PREFIX")]
    pub file_prefix: Option<String>,
    /// Number of workers.
    #[arg(long, value_name = "N")]
    pub workers: Option<u16>,
    /// Connections each worker can track.
    #[arg(long, value_name = "N")]
    pub conn_capacity: Option<u32>,
    /// Full-NAT source ports, "first-last".
    #[arg(long, value_name = "RANGE")]
    pub snat_ports: Option<String>,
    /// Mbufs in the packet pool.
    #[arg(long, value_name = "N")]
    pub mbufs: Option<u32>,
    /// TLS certificate of the TCP API (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key of the TCP API (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA whose client certificates the TCP API requires (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// File with the bearer token TCP clients must send.
    #[arg(long, value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,
    /// A connection-tracking idle timeout, as NAME=SECONDS (e.g. tcp_established=300, udp=0.5);
    /// repeat for more. NAME is a key of [dataplane.timeouts]: tcp_syn, tcp_established,
    /// tcp_fin, tcp_time_wait, tcp_close, udp, udp_stream, icmp, embryonic_under_pressure.
    #[arg(long = "timeout", value_name = "NAME=SECONDS")]
    pub timeouts: Vec<String>,
}

/// A Linux interface name that is also safe inside a DPDK device argument list: 1 to 15
/// characters, no '/', ',', '=', ':' or whitespace.
fn check_interface_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err("must be 1 to 15 characters (a Linux interface name)".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | ',' | '=' | ':') || c.is_whitespace() || c.is_control())
    {
        return Err(format!("must not contain {c:?}"));
    }
    if name == "." || name == ".." {
        return Err("is not a valid interface name".into());
    }
    Ok(())
}

fn sluice_version() -> &'static str {
    crate::build_info::LONG_VERSION
}

/// Reads the configuration file (`None`: the default path if it exists) and applies `args`.
pub fn load(args: &Args) -> Result<Config> {
    let mut config = match &args.config {
        Some(path) => read_file(path)?,
        None if Path::new(DEFAULT_CONFIG).exists() => read_file(Path::new(DEFAULT_CONFIG))?,
        None => Config::default(),
    };
    config.apply_args(args)?;
    config.check()?;
    Ok(config)
}

fn read_file(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading configuration {}", path.display()))?;
    parse(&text).with_context(|| format!("configuration {}", path.display()))
}

/// Parses a configuration file's text.
pub fn parse(text: &str) -> Result<Config> {
    Ok(toml::from_str(text)?)
}

impl Config {
    fn apply_args(&mut self, args: &Args) -> Result<()> {
        if let Some(dir) = &args.state_dir {
            self.state.dir = dir.clone();
        }
        if let Some(socket) = &args.api_socket {
            self.api.unix_socket = socket.clone();
        }
        if let Some(tcp) = &args.api_tcp {
            self.api.tcp = tcp.clone();
        }
        if let Some(admin) = &args.admin_listen {
            self.admin.listen = admin.clone();
        }
        if !args.ports.is_empty() {
            self.ports = args
                .ports
                .iter()
                .map(|spec| {
                    let Some((name, device)) = spec.split_once('=') else {
                        bail!("--port {spec:?}: expected NAME=DEVICE");
                    };
                    Ok(PortConfig {
                        name: name.to_owned(),
                        device: device.to_owned(),
                        rx_queues: None,
                        rx_descriptors: default_descriptors(),
                        tx_descriptors: default_descriptors(),
                        mtu: None,
                        promiscuous: true,
                        host_tap: None,
                    })
                })
                .collect::<Result<_>>()?;
        }
        if let Some(lcores) = &args.lcores {
            self.eal.lcores = Some(lcores.clone());
        }
        if let Some(mb) = args.memory_mb {
            self.eal.memory_mb = Some(mb);
        }
        self.eal.no_huge |= args.no_huge;
        self.eal.no_shconf |= args.no_shconf;
        self.eal.no_pci |= args.no_pci;
        if let Some(prefix) = &args.file_prefix {
            self.eal.file_prefix = Some(prefix.clone());
        }
        if let Some(n) = args.workers {
            self.workers.count = Some(n);
        }
        if let Some(n) = args.conn_capacity {
            self.dataplane.conn_capacity = n;
        }
        if let Some(range) = &args.snat_ports {
            self.dataplane.snat_ports = range.clone();
        }
        if let Some(n) = args.mbufs {
            self.dataplane.mbufs = Some(n);
        }
        if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            self.api.tls = Some(TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_client_ca.clone(),
            });
        }
        if let Some(file) = &args.bearer_token_file {
            self.api.bearer_token_file = Some(file.clone());
        }
        for spec in &args.timeouts {
            self.dataplane.timeouts.set_from_arg(spec)?;
        }
        Ok(())
    }

    /// Checks what can be checked before starting anything.
    pub fn check(&self) -> Result<()> {
        if self.ports.is_empty() {
            bail!("no ports configured: add [[ports]] to the configuration or --port NAME=DEVICE");
        }
        let mut names = std::collections::HashSet::new();
        let mut taps = std::collections::HashSet::new();
        for (i, port) in self.ports.iter().enumerate() {
            controlplane::validate::check_port_name(&port.name)
                .map_err(|e| anyhow::anyhow!("ports[{i}].name {:?}: {e}", port.name))?;
            if !names.insert(port.name.as_str()) {
                bail!("ports[{i}].name: {:?} is used twice", port.name);
            }
            if port.device.trim().is_empty() {
                bail!("ports[{i}].device: required");
            }
            if port.rx_queues == Some(0) {
                bail!("ports[{i}].rx_queues: must be at least 1");
            }
            if let Some(tap) = &port.host_tap {
                check_interface_name(tap)
                    .map_err(|e| anyhow::anyhow!("ports[{i}].host_tap {tap:?}: {e}"))?;
                if !taps.insert(tap.as_str()) {
                    bail!("ports[{i}].host_tap: {tap:?} is used twice");
                }
            }
        }
        let mut vlans = std::collections::HashSet::new();
        for (i, interface) in self.interfaces.iter().enumerate() {
            let Some(vlan) = interface.vlan else { continue };
            if !(1..=4094).contains(&vlan) {
                bail!("interfaces[{i}].vlan: {vlan} is not a VLAN id (1..=4094)");
            }
            if !names.contains(interface.port.as_str()) {
                bail!(
                    "interfaces[{i}].port: a VLAN sub-interface needs a physical port, and there \
                     is no [[ports]] entry named {:?}",
                    interface.port
                );
            }
            if !vlans.insert((interface.port.as_str(), vlan)) {
                bail!(
                    "interfaces[{i}]: VLAN {vlan} on port {:?} is declared twice",
                    interface.port
                );
            }
        }
        if self.workers.count == Some(0) {
            bail!("workers.count: must be at least 1");
        }
        if self.dataplane.conn_capacity == 0 {
            bail!("dataplane.conn_capacity: must be at least 1");
        }
        if !self.dataplane.handoff_ring_size.is_power_of_two() {
            bail!("dataplane.handoff_ring_size: must be a power of two");
        }
        self.dataplane.snat_range()?;
        self.dataplane.timeouts.to_timeouts()?;
        self.socket_mode()?;
        self.api_tcp()?;
        self.admin_listen()?;
        Ok(())
    }

    /// `(port index, tap name)` of every port with an exception path.
    pub fn host_taps(&self) -> Vec<(usize, String)> {
        self.ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.host_tap.clone().map(|t| (i, t)))
            .collect()
    }

    pub fn socket_mode(&self) -> Result<u32> {
        u32::from_str_radix(self.api.unix_socket_mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .with_context(|| {
                format!(
                    "api.unix_socket_mode: {:?} is not an octal file mode",
                    self.api.unix_socket_mode
                )
            })
    }

    pub fn api_tcp(&self) -> Result<Option<SocketAddr>> {
        optional_addr(&self.api.tcp, "api.tcp")
    }

    pub fn admin_listen(&self) -> Result<Option<SocketAddr>> {
        optional_addr(&self.admin.listen, "admin.listen")
    }

    pub fn api_socket(&self) -> Option<PathBuf> {
        (!self.api.unix_socket.is_empty()).then(|| PathBuf::from(&self.api.unix_socket))
    }

    /// The port names, in DPDK port index order for the snapshot.
    /// VLAN sub-interfaces follow the physical ports (`PORT.VLAN`, in `[[interfaces]]` order).
    pub fn port_names(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| p.name.clone())
            .chain(
                self.vlan_ports()
                    .into_iter()
                    .map(|(i, vlan)| format!("{}.{vlan}", self.ports[i].name)),
            )
            .collect()
    }

    /// `(physical port index, VLAN id)` of every VLAN sub-interface, in `[[interfaces]]`
    /// order (logical port `ports.len() + i` is entry `i`).
    pub fn vlan_ports(&self) -> Vec<(usize, u16)> {
        let mut out: Vec<(usize, u16)> = Vec::new();
        for interface in &self.interfaces {
            let Some(vlan) = interface.vlan else { continue };
            let Some(i) = self.ports.iter().position(|p| p.name == interface.port) else {
                continue;
            };
            if !out.contains(&(i, vlan)) {
                out.push((i, vlan));
            }
        }
        out
    }
}

fn optional_addr(text: &str, field: &str) -> Result<Option<SocketAddr>> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .with_context(|| format!("{field}: {text:?} is not an address:port"))
}

/// Whether a port device is a PCI address (`0000:01:00.0` or `01:00.0`) rather than a vdev.
pub fn is_pci_address(device: &str) -> bool {
    let parts: Vec<&str> = device.split(':').collect();
    let hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
    match parts.as_slice() {
        [domain, bus, devfn] => hex(domain) && hex(bus) && devfn_ok(devfn, hex),
        [bus, devfn] => hex(bus) && devfn_ok(devfn, hex),
        _ => false,
    }
}

fn devfn_ok(text: &str, hex: impl Fn(&str) -> bool) -> bool {
    matches!(text.split_once('.'), Some((dev, func)) if hex(dev) && hex(func))
}

/// The ethdev name DPDK gives a device: the PCI address, or a vdev's name (before the first
/// comma).
pub fn device_name(device: &str) -> &str {
    device.split(',').next().unwrap_or(device).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_checks() {
        let text = include_str!("../../sluiced.example.toml");
        let config = parse(text).expect("the example parses");
        config.check().expect("the example is valid");
        assert!(!config.ports.is_empty());
    }

    #[test]
    fn flags_override_the_file() {
        let mut config = parse(
            r#"
            [[ports]]
            name = "port0"
            device = "0000:01:00.0"
            [api]
            tcp = "127.0.0.1:1"
            "#,
        )
        .unwrap();
        let args = Args {
            ports: vec!["a=net_null0".into()],
            api_tcp: Some(String::new()),
            workers: Some(3),
            ..Args::default()
        };
        config.apply_args(&args).unwrap();
        config.check().unwrap();
        assert_eq!(config.port_names(), ["a"]);
        assert_eq!(config.api_tcp().unwrap(), None);
        assert_eq!(config.workers.count, Some(3));
    }

    #[test]
    fn timeouts_are_read_in_seconds_and_checked() {
        let base = "[[ports]]\nname = \"p\"\ndevice = \"net_null0\"\n";
        let config = parse(base).unwrap();
        assert_eq!(
            config.dataplane.timeouts.to_timeouts().unwrap(),
            Timeouts::DEFAULT
        );
        let config = parse(&format!(
            "{base}[dataplane.timeouts]\ntcp_syn = 30\nudp = 0.25\nembryonic_under_pressure = 2"
        ))
        .unwrap();
        config.check().unwrap();
        let t = config.dataplane.timeouts.to_timeouts().unwrap();
        assert_eq!(
            (t.tcp_syn, t.udp, t.embryonic_under_pressure),
            (30_000, 250, 2_000)
        );
        assert_eq!(t.tcp_established, Timeouts::DEFAULT.tcp_established);
        for bad in [
            "tcp_fin = 0",
            "icmp = -1",
            "udp_stream = 1e9",
            "tcp_close = nan",
        ] {
            let config = parse(&format!("{base}[dataplane.timeouts]\n{bad}")).unwrap();
            let err = config.check().unwrap_err().to_string();
            let field = bad.split(' ').next().unwrap();
            assert!(
                err.contains(&format!("dataplane.timeouts.{field}")),
                "{bad}: {err}"
            );
        }
        assert!(parse(&format!("{base}[dataplane.timeouts]\ntcp_sin = 3")).is_err());
    }

    #[test]
    fn timeout_flags_override_the_file_by_the_files_names() {
        let base = "[[ports]]\nname = \"p\"\ndevice = \"net_null0\"\n";
        // Every name the flag takes is the file's key for the same timeout.
        for (i, name) in TimeoutsConfig::names().iter().enumerate() {
            let secs = 7.0 + i as f64;
            let from_file = parse(&format!("{base}[dataplane.timeouts]\n{name} = {secs}"))
                .unwrap()
                .dataplane
                .timeouts
                .to_timeouts()
                .unwrap();
            let mut config = parse(base).unwrap();
            let args = Args {
                timeouts: vec![format!("{name}={secs}")],
                ..Args::default()
            };
            config.apply_args(&args).unwrap();
            assert_eq!(
                config.dataplane.timeouts.to_timeouts().unwrap(),
                from_file,
                "{name}"
            );
        }
        // A flag wins over the file; the last of two flags wins.
        let mut config = parse(&format!("{base}[dataplane.timeouts]\nudp = 9")).unwrap();
        let args = Args {
            timeouts: vec!["udp=4".into(), " udp = 0.5".into()],
            ..Args::default()
        };
        config.apply_args(&args).unwrap();
        assert_eq!(config.dataplane.timeouts.to_timeouts().unwrap().udp, 500);
        for (bad, says) in [
            ("udp", "expected NAME=SECONDS"),
            ("udp=soon", "is not a number"),
            ("tcp_sin=3", "no timeout named \"tcp_sin\""),
        ] {
            let mut config = parse(base).unwrap();
            let args = Args {
                timeouts: vec![bad.into()],
                ..Args::default()
            };
            let err = config.apply_args(&args).unwrap_err().to_string();
            assert!(err.contains(says) && err.contains(bad), "{bad}: {err}");
        }
        // Out of range: refused by the same check as the file's values.
        let mut config = parse(base).unwrap();
        let args = Args {
            timeouts: vec!["icmp=0".into()],
            ..Args::default()
        };
        config.apply_args(&args).unwrap();
        let err = config.check().unwrap_err().to_string();
        assert!(err.contains("dataplane.timeouts.icmp"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(parse("[api]\ntcpp = \"x\"").is_err());
        let config = parse(
            "[[ports]]\nname = \"p\"\ndevice = \"net_null0\"\n[dataplane]\nsnat_ports = \"9-1\"",
        )
        .unwrap();
        assert!(config.check().is_err());
    }

    #[test]
    fn host_taps_are_checked() {
        let ok = parse(
            "[[ports]]\nname = \"a\"\ndevice = \"net_null0\"\nhost_tap = \"sl-a\"\n\
             [[ports]]\nname = \"b\"\ndevice = \"net_null1\"\n",
        )
        .unwrap();
        ok.check().unwrap();
        assert_eq!(ok.host_taps(), [(0, "sl-a".to_owned())]);
        for (tap, wanted) in [
            ("", "1 to 15"),
            ("a-very-long-interface", "1 to 15"),
            ("sl,x", "','"),
            ("sl x", "' '"),
        ] {
            let text =
                format!("[[ports]]\nname = \"a\"\ndevice = \"net_null0\"\nhost_tap = {tap:?}");
            let err = parse(&text).unwrap().check().unwrap_err().to_string();
            assert!(
                err.contains("ports[0].host_tap") && err.contains(wanted),
                "{tap:?}: {err}"
            );
        }
        let twice = parse(
            "[[ports]]\nname = \"a\"\ndevice = \"net_null0\"\nhost_tap = \"t\"\n\
             [[ports]]\nname = \"b\"\ndevice = \"net_null1\"\nhost_tap = \"t\"\n",
        )
        .unwrap();
        let err = twice.check().unwrap_err().to_string();
        assert!(
            err.contains("ports[1].host_tap") && err.contains("twice"),
            "{err}"
        );
    }

    #[test]
    fn vlan_sub_interfaces_become_logical_ports() {
        let ports = "[[ports]]\nname = \"client\"\ndevice = \"net_null0\"\n\
                     [[ports]]\nname = \"backends\"\ndevice = \"net_null1\"\n";
        let vlan = |port: &str, vlan: i64| {
            format!("[[interfaces]]\nport = {port:?}\nvlan = {vlan}\naddresses = []\n")
        };
        let config = parse(&format!(
            "{ports}{}{}",
            vlan("backends", 100),
            vlan("client", 7)
        ))
        .unwrap();
        config.check().unwrap();
        assert_eq!(
            config.port_names(),
            ["client", "backends", "backends.100", "client.7"]
        );
        assert_eq!(config.vlan_ports(), [(1, 100), (0, 7)]);
        for (bad, wanted) in [
            (vlan("backends", 0), "interfaces[0].vlan"),
            (vlan("backends", 4095), "interfaces[0].vlan"),
            (vlan("uplink", 5), "interfaces[0].port"),
            (vlan("client", 5) + &vlan("client", 5), "interfaces[1]"),
        ] {
            let err = parse(&format!("{ports}{bad}"))
                .unwrap()
                .check()
                .unwrap_err()
                .to_string();
            assert!(err.contains(wanted), "{bad}: {err}");
        }
    }

    #[test]
    fn devices_are_classified() {
        assert!(is_pci_address("0000:01:00.0"));
        assert!(is_pci_address("01:00.1"));
        assert!(!is_pci_address("net_null0"));
        assert!(!is_pci_address("net_af_packet0,iface=veth0"));
        assert_eq!(device_name("net_af_packet0,iface=veth0"), "net_af_packet0");
    }
}
