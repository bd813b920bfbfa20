use std::ffi::{CStr, CString};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::burst::MbufBurst;
use super::eal::{Eal, LIVE_RESOURCES};
use super::error::{check, DpdkError, Result};
use super::mempool::Mempool;
use super::ring::RingOwner;

// RTE_BIT64-based flags bindgen cannot evaluate (rte_ethdev.h, DPDK 22.11).
const RSS_IPV4: u64 = 1 << 2;
const RSS_FRAG_IPV4: u64 = 1 << 3;
const RSS_NONFRAG_IPV4_TCP: u64 = 1 << 4;
const RSS_NONFRAG_IPV4_UDP: u64 = 1 << 5;
const RSS_NONFRAG_IPV4_OTHER: u64 = 1 << 7;
const RSS_IPV6: u64 = 1 << 8;
const RSS_FRAG_IPV6: u64 = 1 << 9;
const RSS_NONFRAG_IPV6_TCP: u64 = 1 << 10;
const RSS_NONFRAG_IPV6_UDP: u64 = 1 << 11;
const RSS_NONFRAG_IPV6_OTHER: u64 = 1 << 13;
const RSS_IPV6_EX: u64 = 1 << 15;
const RSS_IPV6_TCP_EX: u64 = 1 << 16;
const RSS_IPV6_UDP_EX: u64 = 1 << 17;
/// RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP.
const RSS_WANTED: u64 = RSS_IPV4
    | RSS_FRAG_IPV4
    | RSS_NONFRAG_IPV4_OTHER
    | RSS_IPV6
    | RSS_FRAG_IPV6
    | RSS_NONFRAG_IPV6_OTHER
    | RSS_IPV6_EX
    | RSS_NONFRAG_IPV4_TCP
    | RSS_NONFRAG_IPV6_TCP
    | RSS_IPV6_TCP_EX
    | RSS_NONFRAG_IPV4_UDP
    | RSS_NONFRAG_IPV6_UDP
    | RSS_IPV6_UDP_EX;
/// RTE_ETH_RX_OFFLOAD_IPV4_CKSUM.
const RX_OFFLOAD_IPV4_CHECKSUM: u64 = 1 << 1;
/// IPv4, UDP and TCP checksums (RTE_ETH_RX_OFFLOAD_CHECKSUM).
const RX_OFFLOAD_CHECKSUM: u64 = RX_OFFLOAD_IPV4_CHECKSUM | (1 << 2) | (1 << 3);
const TX_OFFLOAD_MBUF_FAST_FREE: u64 = 1 << 16;

/// How to set a port up. Requests a device cannot honour are masked by its capabilities
/// (and reported in [`PortInfo`]) rather than failing, except queue counts, which must fit.
#[derive(Debug, Clone)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    /// Spread flows over RX queues by RSS (only applied with >1 RX queue and RSS support).
    pub rss: bool,
    pub promiscuous: bool,
    pub mtu: Option<u16>,
    /// Let the NIC verify IPv4/TCP/UDP checksums on RX where it can.
    pub rx_checksum: bool,
    /// All mbufs sent come from one pool with refcnt 1 (true for Sluice's workers): lets the
    /// driver free them in bulk.
    pub tx_fast_free: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            rss: true,
            promiscuous: true,
            mtu: None,
            rx_checksum: false,
            tx_fast_free: true,
        }
    }
}

/// What DPDK reports about a port, plus what was actually configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    pub id: u16,
    pub name: String,
    pub driver: String,
    pub mac: [u8; 6],
    pub socket: i32,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub rss_offloads: u64,
    pub rx_offload_capa: u64,
    pub tx_offload_capa: u64,
    /// RSS hash functions enabled (0: RSS off).
    pub rss_enabled: u64,
    pub rx_offloads: u64,
    pub tx_offloads: u64,
    pub rx_queues: u16,
    pub tx_queues: u16,
}

impl PortInfo {
    /// Whether the device verifies IPv4 header checksums on receive (asked for and supported),
    /// so that mbufs can say a checksum is bad.
    pub fn rx_ip_checksum_offload(&self) -> bool {
        self.rx_offloads & RX_OFFLOAD_IPV4_CHECKSUM != 0
    }
}

/// Hardware/driver counters of a port (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Dropped by the NIC because RX queues were full.
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_no_mbuf: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

impl fmt::Display for LinkStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.up {
            write!(
                f,
                "up {} Mbps {}",
                self.speed_mbps,
                if self.full_duplex {
                    "full-duplex"
                } else {
                    "half-duplex"
                }
            )
        } else {
            write!(f, "down")
        }
    }
}

/// An ethdev port. Queues are handed out once each as [`RxQueue`]/[`TxQueue`] so that exactly
/// one thread polls each (DPDK's rule); the port is stopped and closed when the `Port` and all
/// its queues are gone.
#[derive(Debug)]
pub struct Port {
    shared: Arc<PortShared>,
    rx_taken: Vec<bool>,
    tx_taken: Vec<bool>,
}

struct PortShared {
    id: u16,
    name: String,
    /// The device name, when we created it at run time (rte_vdev_init): removed on close.
    runtime_vdev: Option<String>,
    started: std::sync::atomic::AtomicBool,
    info: std::sync::Mutex<Option<PortInfo>>,
    /// Rings a ring-pair port reads and writes; freed after the port closes.
    rings: Option<Arc<Rings>>,
    /// RX queues hold mbufs of these pools; they must outlive the port.
    pools: std::sync::Mutex<Vec<Mempool>>,
}

impl fmt::Debug for PortShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortShared")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish()
    }
}

static VDEV_SEQ: AtomicU64 = AtomicU64::new(0);

impl Port {
    /// The port with DPDK id `id`.
    pub fn by_id(_eal: &Eal, id: u16) -> Result<Port> {
        // SAFETY: EAL is up; a validity query.
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(DpdkError::PortNotFound(id.to_string()));
        }
        Ok(Port::wrap(id, name_of(id)?, None))
    }

    /// The port named `name` (a vdev name such as `net_null0`, or a PCI address).
    pub fn by_name(_eal: &Eal, name: &str) -> Result<Port> {
        let c_name = CString::new(name)
            .map_err(|_| DpdkError::InvalidArgument("port name has NUL".into()))?;
        let mut id = 0u16;
        // SAFETY: valid C string and out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut id) };
        if ret != 0 {
            return Err(DpdkError::PortNotFound(name.to_owned()));
        }
        Ok(Port::wrap(id, name.to_owned(), None))
    }

    /// Creates a virtual device at run time, e.g. `("net_ring", "nodeaction=r0:0:CREATE")`.
    /// The device gets a unique name (`<driver>_sl<n>`) and is removed when the port closes.
    /// Some drivers name the ethdev differently from the device (net_ring names it after its
    /// ring), so the new port is found as the one that appeared.
    pub fn create_vdev(eal: &Eal, driver: &str, args: &str) -> Result<Port> {
        static CREATE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _serial = CREATE.lock().unwrap_or_else(|e| e.into_inner());
        let seq = VDEV_SEQ.fetch_add(1, Ordering::Relaxed);
        let device = format!("{driver}_sl{seq}");
        let c_device = CString::new(device.clone())
            .map_err(|_| DpdkError::InvalidArgument("vdev name has NUL".into()))?;
        let c_args = CString::new(args)
            .map_err(|_| DpdkError::InvalidArgument("vdev args have NUL".into()))?;
        let before = eal.port_ids();
        // SAFETY: valid C strings; EAL is up.
        let ret = unsafe { dpdk_sys::rte_vdev_init(c_device.as_ptr(), c_args.as_ptr()) };
        check("rte_vdev_init", ret)?;
        let new: Vec<u16> = eal
            .port_ids()
            .into_iter()
            .filter(|id| !before.contains(id))
            .collect();
        let [id] = new[..] else {
            // SAFETY: the device was just created under this name.
            unsafe { dpdk_sys::rte_vdev_uninit(c_device.as_ptr()) };
            return Err(DpdkError::Unsupported(format!(
                "vdev {device} created {} ports; expected exactly one",
                new.len()
            )));
        };
        let mut port = Port::wrap(id, name_of(id)?, None);
        if let Some(shared) = Arc::get_mut(&mut port.shared) {
            shared.runtime_vdev = Some(device);
        }
        Ok(port)
    }

    /// Two ports joined back to back by rings, like a cable: what one sends on TX queue `q`
    /// the other receives on RX queue `q`. Both use the `net_ring` driver with `queues` queues
    /// each way; the rings are freed when both ports have closed.
    pub fn ring_pair(eal: &Eal, name: &str, ring_size: u32, queues: u16) -> Result<(Port, Port)> {
        let seq = VDEV_SEQ.fetch_add(1, Ordering::Relaxed);
        let queues = queues.max(1);
        let mut a_to_b = Vec::new();
        let mut b_to_a = Vec::new();
        for q in 0..queues {
            a_to_b.push(RingOwner::create(&format!("{name}{seq}ab{q}"), ring_size)?);
            b_to_a.push(RingOwner::create(&format!("{name}{seq}ba{q}"), ring_size)?);
        }
        let ab: Vec<_> = a_to_b.iter().map(RingOwner::as_ptr).collect();
        let ba: Vec<_> = b_to_a.iter().map(RingOwner::as_ptr).collect();
        let rings = Arc::new(Rings {
            _owners: a_to_b.into_iter().chain(b_to_a).collect(),
        });
        let a = Port::from_rings(eal, &format!("{name}{seq}a"), &ba, &ab, rings.clone())?;
        let b = Port::from_rings(eal, &format!("{name}{seq}b"), &ab, &ba, rings)?;
        Ok((a, b))
    }

    fn from_rings(
        _eal: &Eal,
        name: &str,
        rx: &[*mut dpdk_sys::rte_ring],
        tx: &[*mut dpdk_sys::rte_ring],
        keep: Arc<Rings>,
    ) -> Result<Port> {
        let c_name = CString::new(name)
            .map_err(|_| DpdkError::InvalidArgument("port name has NUL".into()))?;
        // SAFETY: valid name and ring arrays of the given lengths; the rings outlive the port
        // (`keep` is stored in the port and dropped after it closes).
        let id = unsafe {
            dpdk_sys::rte_eth_from_rings(
                c_name.as_ptr(),
                rx.as_ptr(),
                rx.len() as u32,
                tx.as_ptr(),
                tx.len() as u32,
                0,
            )
        };
        if id < 0 {
            return Err(DpdkError::from_errno("rte_eth_from_rings"));
        }
        let id = id as u16;
        let mut port = Port::wrap(id, name_of(id)?, None);
        if let Some(shared) = Arc::get_mut(&mut port.shared) {
            shared.runtime_vdev = Some(format!("net_ring_{name}"));
            shared.rings = Some(keep);
        }
        Ok(port)
    }

    fn wrap(id: u16, name: String, runtime_vdev: Option<String>) -> Port {
        LIVE_RESOURCES.fetch_add(1, Ordering::SeqCst);
        Port {
            shared: Arc::new(PortShared {
                id,
                name,
                runtime_vdev,
                rings: None,
                started: false.into(),
                info: std::sync::Mutex::new(None),
                pools: std::sync::Mutex::new(Vec::new()),
            }),
            rx_taken: Vec::new(),
            tx_taken: Vec::new(),
        }
    }

    pub fn id(&self) -> u16 {
        self.shared.id
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The mempool the port's RX queues were configured with (after [`Port::configure`]):
    /// workers allocate the frames they originate (ARP requests, announcements) from it.
    pub fn mempool(&self) -> Option<Mempool> {
        self.shared
            .pools
            .lock()
            .ok()
            .and_then(|pools| pools.first().cloned())
    }

    /// Configures queues and offloads from the device's capabilities and sets up every RX
    /// queue on `pool`. The port must not be started.
    pub fn configure(&mut self, cfg: &PortConfig, pool: &Mempool) -> Result<PortInfo> {
        if self.shared.started.load(Ordering::SeqCst) {
            return Err(DpdkError::Busy(format!("port {} is started", self.name())));
        }
        let id = self.id();
        let dev = dev_info(id)?;
        if cfg.rx_queues == 0 || cfg.tx_queues == 0 {
            return Err(DpdkError::InvalidArgument(
                "a port needs at least one RX and one TX queue".into(),
            ));
        }
        if cfg.rx_queues > dev.max_rx_queues || cfg.tx_queues > dev.max_tx_queues {
            return Err(DpdkError::Unsupported(format!(
                "port {} supports at most {} RX / {} TX queues, {} / {} requested",
                self.name(),
                dev.max_rx_queues,
                dev.max_tx_queues,
                cfg.rx_queues,
                cfg.tx_queues
            )));
        }

        // SAFETY: rte_eth_conf is plain old data; all-zero is DPDK's documented default.
        let mut conf: dpdk_sys::rte_eth_conf = unsafe { std::mem::zeroed() };
        let rss_hf = if cfg.rss && cfg.rx_queues > 1 {
            RSS_WANTED & dev.flow_type_rss_offloads
        } else {
            0
        };
        if rss_hf != 0 {
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        } else if cfg.rx_queues > 1 {
            tracing::warn!(
                port = self.name(),
                "no RSS on this device: all traffic lands on RX queue 0"
            );
        }
        let rx_offloads = if cfg.rx_checksum {
            RX_OFFLOAD_CHECKSUM & dev.rx_offload_capa
        } else {
            0
        };
        let tx_offloads = if cfg.tx_fast_free {
            TX_OFFLOAD_MBUF_FAST_FREE & dev.tx_offload_capa
        } else {
            0
        };
        conf.rxmode.offloads = rx_offloads;
        conf.txmode.offloads = tx_offloads;

        // SAFETY: valid port id and a fully initialised conf.
        let ret =
            unsafe { dpdk_sys::rte_eth_dev_configure(id, cfg.rx_queues, cfg.tx_queues, &conf) };
        check("rte_eth_dev_configure", ret)?;

        let mut nb_rxd = cfg.rx_descriptors;
        let mut nb_txd = cfg.tx_descriptors;
        // SAFETY: valid port id and out pointers; clamps descriptor counts to the device limits.
        let ret =
            unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut nb_rxd, &mut nb_txd) };
        check("rte_eth_dev_adjust_nb_rx_tx_desc", ret)?;

        // SAFETY: valid port id.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let socket_u = if socket < 0 { u32::MAX } else { socket as u32 }; // SOCKET_ID_ANY
        let mut rxconf = dev.default_rxconf;
        rxconf.offloads = rx_offloads;
        for q in 0..cfg.rx_queues {
            // SAFETY: valid port/queue, conf copied from dev_info, pool is a valid pktmbuf
            // pool that this port keeps alive (stored in `pools` below).
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(id, q, nb_rxd, socket_u, &rxconf, pool.as_ptr())
            };
            check("rte_eth_rx_queue_setup", ret)?;
        }
        let mut txconf = dev.default_txconf;
        txconf.offloads = tx_offloads;
        for q in 0..cfg.tx_queues {
            // SAFETY: valid port/queue and conf.
            let ret = unsafe { dpdk_sys::rte_eth_tx_queue_setup(id, q, nb_txd, socket_u, &txconf) };
            check("rte_eth_tx_queue_setup", ret)?;
        }
        if cfg.promiscuous {
            // SAFETY: valid port id. Some vdevs do not support it; that is not an error here.
            let ret = unsafe { dpdk_sys::rte_eth_promiscuous_enable(id) };
            if ret != 0 {
                tracing::debug!(port = self.name(), ret, "promiscuous mode not supported");
            }
        }
        if let Some(mtu) = cfg.mtu {
            // SAFETY: valid port id.
            let ret = unsafe { dpdk_sys::rte_eth_dev_set_mtu(id, mtu) };
            check("rte_eth_dev_set_mtu", ret)?;
        }
        self.shared
            .pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pool.clone());
        self.rx_taken = vec![false; cfg.rx_queues as usize];
        self.tx_taken = vec![false; cfg.tx_queues as usize];

        let info = PortInfo {
            id,
            name: self.name().to_owned(),
            // SAFETY: driver_name is a static C string owned by the driver.
            driver: unsafe { cstr_or_empty(dev.driver_name) },
            mac: mac_of(id)?,
            socket,
            max_rx_queues: dev.max_rx_queues,
            max_tx_queues: dev.max_tx_queues,
            rss_offloads: dev.flow_type_rss_offloads,
            rx_offload_capa: dev.rx_offload_capa,
            tx_offload_capa: dev.tx_offload_capa,
            rss_enabled: rss_hf,
            rx_offloads,
            tx_offloads,
            rx_queues: cfg.rx_queues,
            tx_queues: cfg.tx_queues,
        };
        *self.shared.info.lock().unwrap_or_else(|e| e.into_inner()) = Some(info.clone());
        Ok(info)
    }

    /// What `configure` set up; `None` before.
    pub fn info(&self) -> Option<PortInfo> {
        self.shared
            .info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn start(&mut self) -> Result<()> {
        // SAFETY: valid, configured port.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(self.id()) };
        check("rte_eth_dev_start", ret)?;
        self.shared.started.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Hands out RX queue `q` once; it is the only way to receive on it.
    pub fn rx_queue(&mut self, q: u16) -> Result<RxQueue> {
        take_slot(&mut self.rx_taken, q, "RX", &self.shared.name)?;
        Ok(RxQueue {
            port: self.id(),
            queue: q,
            _shared: self.shared.clone(),
        })
    }

    /// Hands out TX queue `q` once; it is the only way to send on it.
    pub fn tx_queue(&mut self, q: u16) -> Result<TxQueue> {
        take_slot(&mut self.tx_taken, q, "TX", &self.shared.name)?;
        Ok(TxQueue {
            port: self.id(),
            queue: q,
            _shared: self.shared.clone(),
        })
    }

    pub fn mac(&self) -> Result<[u8; 6]> {
        mac_of(self.id())
    }

    pub fn stats(&self) -> Result<PortStats> {
        stats_of(self.id())
    }

    pub fn reset_stats(&self) -> Result<()> {
        // SAFETY: valid port id.
        check("rte_eth_stats_reset", unsafe {
            dpdk_sys::rte_eth_stats_reset(self.id())
        })
    }

    pub fn link(&self) -> Result<LinkStatus> {
        // SAFETY: rte_eth_link is POD; the call fills it.
        let mut link: dpdk_sys::rte_eth_link = unsafe { std::mem::zeroed() };
        // SAFETY: valid port id and out pointer.
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.id(), &mut link) };
        check("rte_eth_link_get_nowait", ret)?;
        Ok(LinkStatus {
            up: link.link_status() != 0,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() != 0,
        })
    }

    /// A reader of this port's counters that stays valid while any queue or the port lives.
    pub fn stats_reader(&self) -> PortStatsReader {
        PortStatsReader {
            port: self.id(),
            _shared: self.shared.clone(),
        }
    }
}

impl Drop for PortShared {
    fn drop(&mut self) {
        let id = self.id;
        if self.started.load(Ordering::SeqCst) {
            // SAFETY: no queue handle remains (we are the last Arc), so no thread polls it.
            let ret = unsafe { dpdk_sys::rte_eth_dev_stop(id) };
            if ret != 0 {
                tracing::warn!(port = %self.name, ret, "rte_eth_dev_stop failed");
            }
        }
        // SAFETY: stopped (or never started); closing releases queues and their mbufs.
        let ret = unsafe { dpdk_sys::rte_eth_dev_close(id) };
        if ret != 0 {
            tracing::warn!(port = %self.name, ret, "rte_eth_dev_close failed");
        }
        if let Some(device) = &self.runtime_vdev {
            if let Ok(c_name) = CString::new(device.as_str()) {
                // SAFETY: the device was created by rte_vdev_init under this name.
                unsafe { dpdk_sys::rte_vdev_uninit(c_name.as_ptr()) };
            }
        }
        LIVE_RESOURCES.fetch_sub(1, Ordering::SeqCst);
        // `pools` drops after this, once the queues no longer reference their mbufs.
    }
}

/// The rings of a ring pair, kept alive by both of its ports.
#[derive(Debug)]
struct Rings {
    /// Held only so the rings are freed once, after both ports closed.
    _owners: Vec<RingOwner>,
}

/// The receive side of one queue: owned by exactly one polling thread.
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
    _shared: Arc<PortShared>,
}

/// The transmit side of one queue: owned by exactly one polling thread.
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
    _shared: Arc<PortShared>,
}

impl RxQueue {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receives up to the burst's free room; returns how many arrived.
    #[inline]
    pub fn rx_burst(&mut self, burst: &mut MbufBurst) -> usize {
        self.rx_burst_max(burst, super::MAX_BURST)
    }

    /// Receives at most `max` packets (and no more than the burst's free room).
    #[inline]
    pub fn rx_burst_max(&mut self, burst: &mut MbufBurst, max: usize) -> usize {
        let (spare, room) = burst.spare();
        let room = room.min(max);
        if room == 0 {
            return 0;
        }
        // SAFETY: this handle is the queue's only user (&mut self, handed out once); `spare`
        // has `room` writable slots; the port is started or the PMD returns 0.
        let n = unsafe { dpdk_sys::sluice_eth_rx_burst(self.port, self.queue, spare, room as u16) };
        let n = (n as usize).min(room);
        // SAFETY: the driver wrote n owned mbufs into the spare slots.
        unsafe { burst.commit(n) };
        n
    }
}

impl TxQueue {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Sends what the burst holds; the driver takes a prefix, the rest stays in `burst`
    /// (send again, or drop the burst to free it). Returns how many were taken.
    #[inline]
    pub fn tx_burst(&mut self, burst: &mut MbufBurst) -> usize {
        let (pkts, len) = burst.raw_mut();
        if len == 0 {
            return 0;
        }
        // SAFETY: this handle is the queue's only user; `pkts` holds `len` owned mbufs, and the
        // driver takes ownership of the first `n` it reports.
        let n = unsafe { dpdk_sys::sluice_eth_tx_burst(self.port, self.queue, pkts, len as u16) };
        burst.consume_front(n as usize);
        n as usize
    }
}

/// Reads a port's counters from any thread.
#[derive(Debug, Clone)]
pub struct PortStatsReader {
    port: u16,
    _shared: Arc<PortShared>,
}

impl PortStatsReader {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn stats(&self) -> Result<PortStats> {
        stats_of(self.port)
    }
}

fn take_slot(slots: &mut [bool], q: u16, kind: &str, port: &str) -> Result<()> {
    match slots.get_mut(q as usize) {
        None => Err(DpdkError::InvalidArgument(format!(
            "{kind} queue {q} of port {port} is not configured"
        ))),
        Some(true) => Err(DpdkError::Busy(format!("{kind} queue {q} of port {port}"))),
        Some(slot) => {
            *slot = true;
            Ok(())
        }
    }
}

fn dev_info(id: u16) -> Result<dpdk_sys::rte_eth_dev_info> {
    // SAFETY: rte_eth_dev_info is POD; the call fills it.
    let mut info: dpdk_sys::rte_eth_dev_info = unsafe { std::mem::zeroed() };
    // SAFETY: valid out pointer.
    let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(id, &mut info) };
    check("rte_eth_dev_info_get", ret)?;
    Ok(info)
}

fn mac_of(id: u16) -> Result<[u8; 6]> {
    let mut addr = dpdk_sys::rte_ether_addr::default();
    // SAFETY: valid out pointer.
    let ret = unsafe { dpdk_sys::rte_eth_macaddr_get(id, &mut addr) };
    check("rte_eth_macaddr_get", ret)?;
    Ok(addr.addr_bytes)
}

fn name_of(id: u16) -> Result<String> {
    let mut buf = [0 as std::ffi::c_char; 64];
    // SAFETY: the buffer is RTE_ETH_NAME_MAX_LEN (64) bytes as the API requires.
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(id, buf.as_mut_ptr()) };
    check("rte_eth_dev_get_name_by_port", ret)?;
    // SAFETY: DPDK wrote a NUL-terminated name into buf.
    Ok(unsafe { cstr_or_empty(buf.as_ptr()) })
}

fn stats_of(id: u16) -> Result<PortStats> {
    // SAFETY: rte_eth_stats is POD; the call fills it.
    let mut s: dpdk_sys::rte_eth_stats = unsafe { std::mem::zeroed() };
    // SAFETY: valid out pointer.
    let ret = unsafe { dpdk_sys::rte_eth_stats_get(id, &mut s) };
    check("rte_eth_stats_get", ret)?;
    Ok(PortStats {
        rx_packets: s.ipackets,
        tx_packets: s.opackets,
        rx_bytes: s.ibytes,
        tx_bytes: s.obytes,
        rx_missed: s.imissed,
        rx_errors: s.ierrors,
        tx_errors: s.oerrors,
        rx_no_mbuf: s.rx_nombuf,
    })
}

/// # Safety
/// `p` must be null or a NUL-terminated string.
unsafe fn cstr_or_empty(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: per the contract above.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}
