//! Single-producer/single-consumer rings of mbufs (DPDK's lock-free `rte_ring`): the "cable"
//! of a port pair, and the handoff channel between workers (a packet RSS delivered to a worker
//! that does not own its connection goes to the owner this way).

use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::burst::{MbufBurst, MAX_BURST};
use super::error::{DpdkError, Result};

const RING_F_SP_ENQ: u32 = 1;
const RING_F_SC_DEQ: u32 = 2;

/// An rte_ring we created; freed (with any mbufs left in it) on drop.
#[derive(Debug)]
pub(crate) struct RingOwner {
    ptr: *mut dpdk_sys::rte_ring,
}

// SAFETY: rte_ring is a lock-free structure usable from any thread; ownership is unique.
unsafe impl Send for RingOwner {}
// SAFETY: shared references only hand the pointer to DPDK, which synchronises internally; the
// SP/SC discipline is enforced by the channel halves below (one producer, one consumer).
unsafe impl Sync for RingOwner {}

static RING_SEQ: AtomicU64 = AtomicU64::new(0);

impl RingOwner {
    /// A single-producer/single-consumer ring of at least `size` slots.
    pub(crate) fn create(name: &str, size: u32) -> Result<RingOwner> {
        let seq = RING_SEQ.fetch_add(1, Ordering::Relaxed);
        let mut short: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        short.truncate(16);
        let c_name = CString::new(format!("{short}_{seq}"))
            .map_err(|_| DpdkError::InvalidArgument("ring name has NUL".into()))?;
        // rte_ring keeps one slot empty: ask for the next power of two above `size`.
        let count = (size.max(2) + 1).next_power_of_two();
        // SAFETY: valid name; single producer/consumer matches how the halves use it.
        let ptr = unsafe {
            dpdk_sys::rte_ring_create(c_name.as_ptr(), count, -1, RING_F_SP_ENQ | RING_F_SC_DEQ)
        };
        if ptr.is_null() {
            return Err(DpdkError::from_errno("rte_ring_create"));
        }
        Ok(RingOwner { ptr })
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_ring {
        self.ptr
    }

    /// Mbufs waiting in the ring.
    pub(crate) fn len(&self) -> usize {
        // SAFETY: valid ring; a read-only count.
        unsafe { dpdk_sys::sluice_ring_count(self.ptr) as usize }
    }
}

impl Drop for RingOwner {
    fn drop(&mut self) {
        // Mbufs still in the ring belong to nobody else: free them.
        let mut objs = [std::ptr::null_mut::<std::ffi::c_void>(); MAX_BURST];
        loop {
            // SAFETY: no producer or consumer remains (we are the last owner).
            let n = unsafe {
                dpdk_sys::sluice_ring_sc_dequeue_burst(
                    self.ptr,
                    objs.as_mut_ptr(),
                    MAX_BURST as u32,
                )
            };
            if n == 0 {
                break;
            }
            for &o in &objs[..n as usize] {
                // SAFETY: these rings only ever carry owned mbufs handed over by a producer.
                unsafe { dpdk_sys::sluice_pktmbuf_free(o.cast()) };
            }
        }
        // SAFETY: created by rte_ring_create and no longer referenced.
        unsafe { dpdk_sys::rte_ring_free(self.ptr) };
    }
}

/// Creates a handoff channel of `size` mbufs: one sending half, one receiving half, each for
/// exactly one thread.
pub fn handoff_channel(name: &str, size: u32) -> Result<(HandoffTx, HandoffRx)> {
    let ring = Arc::new(RingOwner::create(name, size)?);
    Ok((HandoffTx { ring: ring.clone() }, HandoffRx { ring }))
}

/// The producing half of a handoff channel.
#[derive(Debug)]
pub struct HandoffTx {
    ring: Arc<RingOwner>,
}

/// The consuming half of a handoff channel.
#[derive(Debug)]
pub struct HandoffRx {
    ring: Arc<RingOwner>,
}

impl HandoffTx {
    /// Moves as many mbufs of `burst` into the ring as fit (from the front); what did not fit
    /// stays in the burst. Returns how many went.
    #[inline]
    pub fn send_burst(&mut self, burst: &mut MbufBurst) -> usize {
        let (pkts, len) = burst.raw_mut();
        if len == 0 {
            return 0;
        }
        // SAFETY: &mut self makes this the ring's only producer; the first `n` mbufs reported
        // become the ring's (and then the consumer's).
        let n = unsafe {
            dpdk_sys::sluice_ring_sp_enqueue_burst(self.ring.as_ptr(), pkts.cast(), len as u32)
        } as usize;
        burst.consume_front(n);
        n
    }

    pub fn pending(&self) -> usize {
        self.ring.len()
    }
}

impl HandoffRx {
    /// Takes up to the burst's free room from the ring; returns how many arrived.
    #[inline]
    pub fn recv_burst(&mut self, burst: &mut MbufBurst) -> usize {
        let (spare, room) = burst.spare();
        if room == 0 {
            return 0;
        }
        // SAFETY: &mut self makes this the ring's only consumer; the ring holds owned mbufs,
        // and `spare` has `room` writable slots.
        let n = unsafe {
            dpdk_sys::sluice_ring_sc_dequeue_burst(self.ring.as_ptr(), spare.cast(), room as u32)
        } as usize;
        // SAFETY: the ring wrote n owned mbufs into the spare slots.
        unsafe { burst.commit(n.min(room)) };
        n
    }
}
