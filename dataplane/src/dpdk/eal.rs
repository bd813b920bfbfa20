use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::error::{DpdkError, Result};

/// Command-line arguments for `rte_eal_init`, built with named options so callers cannot
/// misspell the flags that matter (and raw ones appended where needed).
#[derive(Debug, Clone)]
pub struct EalArgs {
    args: Vec<String>,
}

impl EalArgs {
    /// Starts an argument list; `program` becomes argv[0] (DPDK uses it in log lines).
    pub fn new(program: &str) -> EalArgs {
        EalArgs {
            args: vec![program.to_owned()],
        }
    }

    /// The arguments for running without hugepages on this kind of machine:
    /// `--no-huge -m <mb> --no-shconf --no-pci`, and lcores `lcores`.
    pub fn no_hugepages_test(program: &str, memory_mb: u32, lcores: &str) -> EalArgs {
        EalArgs::new(program)
            .no_huge()
            .memory_mb(memory_mb)
            .no_shconf()
            .no_pci()
            .lcores(lcores)
    }

    pub fn no_huge(self) -> Self {
        self.arg("--no-huge")
    }

    pub fn memory_mb(self, mb: u32) -> Self {
        self.arg("-m").arg(mb.to_string())
    }

    /// No shared configuration files: several processes (or test binaries) can run at once.
    pub fn no_shconf(self) -> Self {
        self.arg("--no-shconf")
    }

    pub fn file_prefix(self, prefix: &str) -> Self {
        self.arg(format!("--file-prefix={prefix}"))
    }

    pub fn no_pci(self) -> Self {
        self.arg("--no-pci")
    }

    /// The lcore list, e.g. `"0-1"` or `"0,1"`; the first is the main lcore.
    pub fn lcores(self, list: &str) -> Self {
        self.arg("-l").arg(list)
    }

    /// A virtual device, e.g. `net_null0` or `net_pcap0,rx_pcap=w1.pcap`.
    pub fn vdev(self, spec: &str) -> Self {
        self.arg(format!("--vdev={spec}"))
    }

    /// DPDK log level, e.g. `"notice"` or `"pmd.net.null:debug"`.
    pub fn log_level(self, level: &str) -> Self {
        self.arg(format!("--log-level={level}"))
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn as_slice(&self) -> &[String] {
        &self.args
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Uninitialised,
    Running,
    CleanedUp,
}

static STATE: Mutex<State> = Mutex::new(State::Uninitialised);

/// Ports and mempools alive; `Eal::cleanup` refuses while any remain, since DPDK memory they
/// point into is released by `rte_eal_cleanup`.
pub(crate) static LIVE_RESOURCES: AtomicUsize = AtomicUsize::new(0);

/// A handle proving the EAL is initialised in this process. Cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Initialises the EAL. DPDK allows this once per process: a second call fails with
    /// [`DpdkError::AlreadyInitialised`] (use [`Eal::get`] to reach the running EAL).
    ///
    /// Note that `rte_eal_init` pins the calling thread to the main lcore.
    pub fn init(args: &EalArgs) -> Result<Eal> {
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if *state != State::Uninitialised {
            return Err(DpdkError::AlreadyInitialised);
        }
        let c_args: Vec<CString> = args
            .args
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| DpdkError::InvalidArgument("EAL argument contains a NUL byte".into()))?;
        // rte_eal_init may permute argv; it keeps pointers into it (for the program name), so
        // the strings are leaked on purpose: they must live as long as the process.
        let mut argv: Vec<*mut c_char> = c_args.into_iter().map(CString::into_raw).collect();
        let argc = c_int::try_from(argv.len())
            .map_err(|_| DpdkError::InvalidArgument("too many EAL arguments".into()))?;
        // SAFETY: argv holds argc valid NUL-terminated strings that are never freed; the EAL
        // state mutex guarantees this runs at most once at a time and once successfully.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        std::mem::forget(argv);
        if ret < 0 {
            return Err(DpdkError::from_errno("rte_eal_init"));
        }
        *state = State::Running;
        tracing::info!(version = %runtime_version(), "DPDK EAL initialised");
        Ok(Eal { _private: () })
    }

    /// The running EAL, if [`Eal::init`] succeeded and it was not cleaned up.
    pub fn get() -> Option<Eal> {
        let state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        (*state == State::Running).then_some(Eal { _private: () })
    }

    /// Releases the EAL's resources (`rte_eal_cleanup`). Every port and mempool must be
    /// dropped first; after this no DPDK call may be made in this process.
    pub fn cleanup(self) -> Result<()> {
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if *state != State::Running {
            return Err(DpdkError::NotInitialised);
        }
        let live = LIVE_RESOURCES.load(Ordering::SeqCst);
        if live != 0 {
            return Err(DpdkError::Busy(format!("{live} DPDK port(s)/mempool(s)")));
        }
        // SAFETY: the EAL is running, no port or mempool remains, and the state flips to
        // CleanedUp so no further handle can be obtained.
        let ret = unsafe { dpdk_sys::rte_eal_cleanup() };
        *state = State::CleanedUp;
        super::error::check("rte_eal_cleanup", ret)
    }

    /// Lcore ids enabled by the `-l` option, main lcore first.
    pub fn lcores(&self) -> Vec<u32> {
        // SAFETY: EAL is initialised (this handle exists); these are read-only queries.
        let main = unsafe { dpdk_sys::rte_get_main_lcore() };
        let mut out = vec![main];
        out.extend(self.worker_lcores());
        out
    }

    /// Enabled lcores other than the main one.
    pub fn worker_lcores(&self) -> Vec<u32> {
        // SAFETY: EAL is initialised; read-only queries.
        let main = unsafe { dpdk_sys::rte_get_main_lcore() };
        (0..dpdk_sys::RTE_MAX_LCORE)
            // SAFETY: lcore ids below RTE_MAX_LCORE are valid arguments.
            .filter(|&id| id != main && unsafe { dpdk_sys::rte_lcore_is_enabled(id) } != 0)
            .collect()
    }

    pub fn main_lcore(&self) -> u32 {
        // SAFETY: EAL is initialised; read-only query.
        unsafe { dpdk_sys::rte_get_main_lcore() }
    }

    /// Number of ethdev ports DPDK probed (PCI devices and `--vdev`s).
    pub fn port_count(&self) -> u16 {
        // SAFETY: EAL is initialised; read-only query.
        unsafe { dpdk_sys::rte_eth_dev_count_avail() }
    }

    /// Ids of all available ports, in order.
    pub fn port_ids(&self) -> Vec<u16> {
        let mut ids = Vec::new();
        // SAFETY: EAL is initialised; rte_eth_find_next returns RTE_MAX_ETHPORTS past the end.
        let mut id = unsafe { dpdk_sys::rte_eth_find_next(0) };
        while u32::from(id) < dpdk_sys::RTE_MAX_ETHPORTS {
            ids.push(id);
            // SAFETY: as above.
            id = unsafe { dpdk_sys::rte_eth_find_next(id + 1) };
        }
        ids
    }
}

/// The DPDK version linked at run time, e.g. "DPDK 22.11.11".
pub fn runtime_version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(dpdk_sys::sluice_version()) }
        .to_string_lossy()
        .into_owned()
}

/// Time-stamp counter ticks per second, as measured by the EAL.
pub fn tsc_hz() -> u64 {
    // SAFETY: plain query; valid once the EAL is up (returns 0 before).
    unsafe { dpdk_sys::sluice_tsc_hz() }
}
