use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::eal::{Eal, LIVE_RESOURCES};
use super::error::{DpdkError, Result};
use super::mbuf::Mbuf;

/// A pool of packet buffers (`rte_pktmbuf_pool_create`). Clones share the pool; it is freed
/// when the last clone goes, unless mbufs are still out, in which case it is deliberately
/// leaked (freeing it would leave those mbufs dangling) and the leak is logged.
#[derive(Clone, Debug)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    pool: NonNull<dpdk_sys::rte_mempool>,
    name: String,
}

// SAFETY: rte_mempool is designed for concurrent use from many threads (lock-free ring plus
// per-lcore caches); the pointer stays valid until PoolInner is dropped.
unsafe impl Send for PoolInner {}
// SAFETY: as above; all methods are thread-safe DPDK calls.
unsafe impl Sync for PoolInner {}

static POOL_SEQ: AtomicU64 = AtomicU64::new(0);

impl Mempool {
    /// Creates a pool of `size` mbufs with `data_room` bytes each (headroom included; DPDK's
    /// default is 2176) and a per-lcore cache of `cache` mbufs, on `socket` (`None`: any).
    pub fn new(
        _eal: &Eal,
        name: &str,
        size: u32,
        cache: u32,
        data_room: u16,
        socket: Option<i32>,
    ) -> Result<Mempool> {
        if size == 0 {
            return Err(DpdkError::InvalidArgument(
                "mempool size must be > 0".into(),
            ));
        }
        // Pool names are global in DPDK and limited to RTE_MEMPOOL_NAMESIZE; a sequence
        // number keeps them unique when callers reuse a name.
        let seq = POOL_SEQ.fetch_add(1, Ordering::Relaxed);
        let mut short: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        short.truncate(16);
        let unique = format!("{short}_{seq}");
        let c_name = CString::new(unique.clone())
            .map_err(|_| DpdkError::InvalidArgument("mempool name contains NUL".into()))?;
        // -1 is SOCKET_ID_ANY.
        let socket_id = socket.unwrap_or(-1);
        // SAFETY: c_name is a valid C string; the EAL is initialised (an Eal handle exists).
        let ptr = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(c_name.as_ptr(), size, cache, 0, data_room, socket_id)
        };
        let pool =
            NonNull::new(ptr).ok_or_else(|| DpdkError::from_errno("rte_pktmbuf_pool_create"))?;
        LIVE_RESOURCES.fetch_add(1, Ordering::SeqCst);
        Ok(Mempool {
            inner: Arc::new(PoolInner { pool, name: unique }),
        })
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.inner.pool.as_ptr()
    }

    /// Mbufs currently allocated from the pool (held by us, by a driver's rings, or leaked).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool pointer is valid for the life of self.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.as_ptr()) }
    }

    /// Mbufs free in the pool (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool pointer is valid for the life of self.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.as_ptr()) }
    }

    /// Allocates one mbuf, reset and empty; `None` when the pool is exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is a valid pktmbuf pool; a non-null result is a fresh mbuf that we
        // now own exclusively.
        unsafe { Mbuf::from_raw(dpdk_sys::sluice_pktmbuf_alloc(self.as_ptr())) }
    }

    /// Allocates `count` mbufs into `out` (all or nothing); returns false when the pool
    /// cannot supply them all or `out` has no room.
    #[inline]
    pub fn alloc_bulk(&self, out: &mut super::MbufBurst, count: usize) -> bool {
        out.alloc_from(self, count)
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: the pool pointer is valid until freed below.
        let in_use = unsafe { dpdk_sys::rte_mempool_in_use_count(self.pool.as_ptr()) };
        if in_use == 0 {
            // SAFETY: no mbuf of the pool remains and no other clone exists (last Arc).
            unsafe { dpdk_sys::rte_mempool_free(self.pool.as_ptr()) };
            LIVE_RESOURCES.fetch_sub(1, Ordering::SeqCst);
        } else {
            // Leaked on purpose: freeing would leave `in_use` mbufs pointing into freed memory.
            // It still counts as live, so Eal::cleanup refuses rather than free it under them.
            tracing::error!(pool = %self.name, in_use, "mempool dropped with mbufs still in use; leaking it");
        }
    }
}
