use super::mbuf::Mbuf;
use super::mempool::Mempool;
use super::port::TxQueue;

/// The largest burst moved in one call; 32 as in DPDK's examples (l3fwd, testpmd default).
pub const MAX_BURST: usize = 32;

/// A fixed array of owned mbufs, the unit of RX and TX. No allocation; whatever it still
/// holds when dropped is freed, so a partial `tx_burst` never leaks.
#[derive(Debug)]
pub struct MbufBurst {
    len: usize,
    pkts: [*mut dpdk_sys::rte_mbuf; MAX_BURST],
}

// SAFETY: the burst exclusively owns the mbufs it holds (see Mbuf's Send).
unsafe impl Send for MbufBurst {}

impl Default for MbufBurst {
    fn default() -> Self {
        Self::new()
    }
}

impl MbufBurst {
    pub const fn new() -> MbufBurst {
        MbufBurst {
            len: 0,
            pkts: [std::ptr::null_mut(); MAX_BURST],
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == MAX_BURST
    }

    /// Adds an mbuf at the end; gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        match self.pkts.get_mut(self.len) {
            Some(slot) => {
                *slot = mbuf.into_raw();
                self.len += 1;
                Ok(())
            }
            None => Err(mbuf),
        }
    }

    /// Removes the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slots below the old len hold owned, valid mbufs; this one leaves the burst.
        unsafe { Mbuf::from_raw(self.pkts[self.len]) }
    }

    /// The held mbufs, as owned handles borrowed in place.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        let live = &mut self.pkts[..self.len];
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, and every slot below len
        // holds a non-null owned mbuf, so the slice reinterprets as &mut [Mbuf].
        unsafe { std::slice::from_raw_parts_mut(live.as_mut_ptr() as *mut Mbuf, live.len()) }
    }

    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        let live = &self.pkts[..self.len];
        // SAFETY: as in as_mut_slice.
        unsafe { std::slice::from_raw_parts(live.as_ptr() as *const Mbuf, live.len()) }
    }

    /// Moves every mbuf out, in order, leaving the burst empty; mbufs the iterator does not
    /// yield before it is dropped are freed.
    pub fn drain(&mut self) -> Drain<'_> {
        let end = std::mem::take(&mut self.len);
        Drain {
            pkts: &mut self.pkts,
            pos: 0,
            end,
        }
    }

    /// Frees every mbuf held.
    #[inline]
    pub fn clear(&mut self) {
        if self.len > 0 {
            // SAFETY: slots below len are owned mbufs; after this they are gone (len = 0).
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.pkts.as_mut_ptr(), self.len as u32) };
            self.len = 0;
        }
    }

    /// Room for the driver to write into: (pointer to the first free slot, free slots).
    #[inline]
    pub(crate) fn spare(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, usize) {
        // SAFETY: len <= MAX_BURST, so the offset stays within (or one past) the array.
        (
            unsafe { self.pkts.as_mut_ptr().add(self.len) },
            MAX_BURST - self.len,
        )
    }

    /// Records that a driver filled `n` slots after the current end.
    ///
    /// # Safety
    /// The `n` slots after `len` must now hold owned, valid mbufs.
    #[inline]
    pub(crate) unsafe fn commit(&mut self, n: usize) {
        debug_assert!(self.len + n <= MAX_BURST);
        self.len = (self.len + n).min(MAX_BURST);
    }

    /// The held mbufs as a raw array for a driver's TX call.
    #[inline]
    pub(crate) fn raw_mut(&mut self) -> (*mut *mut dpdk_sys::rte_mbuf, usize) {
        (self.pkts.as_mut_ptr(), self.len)
    }

    /// Forgets the first `n` mbufs (a driver took them) and moves the rest to the front.
    #[inline]
    pub(crate) fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.pkts.copy_within(n..self.len, 0);
        self.len -= n;
    }

    pub(crate) fn alloc_from(&mut self, pool: &Mempool, count: usize) -> bool {
        let (spare, room) = self.spare();
        if count > room {
            return false;
        }
        // SAFETY: `spare` has room for `count` pointers; on success DPDK writes `count` fresh
        // mbufs there (all or nothing), which then belong to this burst.
        let ret =
            unsafe { dpdk_sys::sluice_pktmbuf_alloc_bulk(pool.as_ptr(), spare, count as u32) };
        if ret != 0 {
            return false;
        }
        // SAFETY: DPDK filled exactly `count` slots.
        unsafe { self.commit(count) };
        true
    }
}

impl Drop for MbufBurst {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Iterator of [`MbufBurst::drain`].
#[derive(Debug)]
pub struct Drain<'a> {
    pkts: &'a mut [*mut dpdk_sys::rte_mbuf; MAX_BURST],
    pos: usize,
    end: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.pos >= self.end {
            return None;
        }
        let p = self.pkts.get(self.pos).copied()?;
        self.pos += 1;
        // SAFETY: slots in pos..end hold owned mbufs that the burst no longer counts (its len
        // was reset); each is handed out exactly once.
        unsafe { Mbuf::from_raw(p) }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end.saturating_sub(self.pos);
        (n, Some(n))
    }
}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        for m in self.by_ref() {
            drop(m);
        }
    }
}

/// Buffers packets for one TX queue and sends them a full burst at a time, as l3fwd does; a
/// drain timer in the worker calls [`TxBuffer::flush`] so a trickle is not held back. What
/// the driver does not take after a flush is freed and counted as dropped.
#[derive(Debug)]
pub struct TxBuffer {
    burst: MbufBurst,
    sent: u64,
    dropped: u64,
}

impl Default for TxBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl TxBuffer {
    pub const fn new() -> TxBuffer {
        TxBuffer {
            burst: MbufBurst::new(),
            sent: 0,
            dropped: 0,
        }
    }

    /// Queues one packet; sends the buffer when it fills.
    #[inline]
    pub fn push(&mut self, queue: &mut TxQueue, mbuf: Mbuf) {
        if let Err(mbuf) = self.burst.push(mbuf) {
            // Cannot happen (we flush at full), but never lose an mbuf if it did.
            drop(mbuf);
            self.dropped += 1;
            return;
        }
        if self.burst.is_full() {
            self.flush(queue);
        }
    }

    /// Sends what is buffered; frees and counts what the driver refused.
    #[inline]
    pub fn flush(&mut self, queue: &mut TxQueue) {
        if self.burst.is_empty() {
            return;
        }
        let sent = queue.tx_burst(&mut self.burst);
        self.sent += sent as u64;
        let left = self.burst.len();
        if left > 0 {
            self.dropped += left as u64;
            self.burst.clear();
        }
    }

    /// Sends all of `burst` in one call when nothing is buffered ahead of it (so the order
    /// holds), else queues its packets behind the buffered ones. Either way `burst` ends empty;
    /// what the driver refused is freed and counted.
    #[inline]
    pub fn send_burst(&mut self, queue: &mut TxQueue, burst: &mut MbufBurst) {
        if !self.burst.is_empty() {
            for mbuf in burst.drain() {
                self.push(queue, mbuf);
            }
            return;
        }
        let sent = queue.tx_burst(burst);
        self.sent += sent as u64;
        let left = burst.len();
        if left > 0 {
            self.dropped += left as u64;
            burst.clear();
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.burst.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.burst.is_empty()
    }

    pub fn sent(&self) -> u64 {
        self.sent
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}
