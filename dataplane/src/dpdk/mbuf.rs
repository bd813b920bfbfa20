use std::ptr::NonNull;

/// An owned packet buffer. Dropping it returns it to its pool; handing it to a TX queue
/// transfers ownership (see [`super::MbufBurst`]).
///
/// Only single-segment mbufs are exposed as slices: Sluice's ports are configured without
/// scatter, so a received packet is always one segment.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<dpdk_sys::rte_mbuf>);

// SAFETY: an Mbuf is exclusively owned; DPDK mbufs may move between threads (that is what TX
// queues and rings do) and are freed to thread-safe mempools.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf; `None` for null.
    ///
    /// # Safety
    /// `ptr` must be null or a valid mbuf that nothing else owns or will free.
    #[inline]
    pub unsafe fn from_raw(ptr: *mut dpdk_sys::rte_mbuf) -> Option<Mbuf> {
        NonNull::new(ptr).map(Mbuf)
    }

    /// Gives up ownership; the caller must free or transmit the mbuf.
    #[inline]
    pub fn into_raw(self) -> *mut dpdk_sys::rte_mbuf {
        let ptr = self.0.as_ptr();
        std::mem::forget(self);
        ptr
    }

    #[inline]
    pub fn as_ptr(&self) -> *mut dpdk_sys::rte_mbuf {
        self.0.as_ptr()
    }

    #[inline]
    fn raw(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: we own a valid mbuf for the life of self.
        unsafe { self.0.as_ref() }
    }

    /// Length of the packet data (first segment).
    #[inline]
    pub fn len(&self) -> usize {
        self.raw().data_len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total packet length over all segments.
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.raw().pkt_len
    }

    #[inline]
    pub fn segments(&self) -> u16 {
        self.raw().nb_segs
    }

    /// The port the packet arrived on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Whether the NIC verified the IPv4 header checksum and found it wrong (`ol_flags`, set
    /// with RX checksum offload on; "unknown", the vdevs' answer, and "good" are not).
    #[inline]
    pub fn rx_ip_checksum_bad(&self) -> bool {
        self.raw().ol_flags & u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_MASK)
            == u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_BAD)
    }

    /// Whether the NIC verified the IPv4 header checksum at all (`ol_flags` say good, bad or
    /// "none", not "unknown": the vdevs' and offload-less NICs' answer, and a non-IPv4 packet's).
    #[inline]
    pub fn rx_ip_checksum_checked(&self) -> bool {
        self.raw().ol_flags & u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_MASK)
            != u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN)
    }

    /// Sets the offload flags, as a PMD does on receive (for tests that stand in for a NIC).
    #[inline]
    pub fn set_ol_flags(&mut self, flags: u64) {
        // SAFETY: exclusive ownership; a plain field write.
        unsafe { self.0.as_mut().ol_flags = flags };
    }

    #[inline]
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: exclusive ownership; a plain field write.
        unsafe { self.0.as_mut().port = port };
    }

    /// The packet bytes of the first segment.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off points at data_len initialised bytes inside the mbuf's
        // buffer (DPDK's invariant for a valid mbuf); the borrow ties them to &self.
        unsafe {
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// The packet bytes of the first segment, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and &mut self guarantees exclusive access. A cloned
        // (refcnt > 1) mbuf is never produced by this crate, so the buffer is not shared.
        unsafe {
            let m = self.0.as_mut();
            std::slice::from_raw_parts_mut(
                (m.buf_addr as *mut u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// Grows the packet at the tail by `len` bytes and returns them; `None` without room.
    #[inline]
    pub fn append(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: valid owned mbuf; rte_pktmbuf_append returns NULL when there is no tailroom
        // and otherwise a pointer to `len` writable bytes inside the buffer.
        unsafe {
            let p = dpdk_sys::sluice_pktmbuf_append(self.as_ptr(), len);
            if p.is_null() {
                None
            } else {
                Some(std::slice::from_raw_parts_mut(p as *mut u8, len as usize))
            }
        }
    }

    /// Grows the packet at the head by `len` bytes (e.g. to push a VLAN tag); `None` without
    /// headroom.
    #[inline]
    pub fn prepend(&mut self, len: u16) -> Option<&mut [u8]> {
        // SAFETY: as in `append`, with headroom instead of tailroom.
        unsafe {
            let p = dpdk_sys::sluice_pktmbuf_prepend(self.as_ptr(), len);
            if p.is_null() {
                None
            } else {
                Some(std::slice::from_raw_parts_mut(p as *mut u8, len as usize))
            }
        }
    }

    /// Removes `len` bytes from the head; false if the packet is shorter.
    #[inline]
    pub fn adj(&mut self, len: u16) -> bool {
        // SAFETY: valid owned mbuf; returns NULL (no change) if len > data_len.
        unsafe { !dpdk_sys::sluice_pktmbuf_adj(self.as_ptr(), len).is_null() }
    }

    /// Removes `len` bytes from the tail; false if the packet is shorter.
    #[inline]
    pub fn trim(&mut self, len: u16) -> bool {
        // SAFETY: valid owned mbuf; returns -1 (no change) if len > data_len.
        unsafe { dpdk_sys::sluice_pktmbuf_trim(self.as_ptr(), len) == 0 }
    }

    /// Appends `tail` (and its segments) as further segments of this packet. `Err(tail)`
    /// if the chain would exceed DPDK's segment limit (nothing changed).
    pub fn chain(&mut self, tail: Mbuf) -> Result<(), Mbuf> {
        // SAFETY: both mbufs are valid and owned; on success the head owns the tail (freed
        // with it), so the tail's handle must not free it as well.
        let rc = unsafe { dpdk_sys::sluice_pktmbuf_chain(self.as_ptr(), tail.as_ptr()) };
        if rc == 0 {
            core::mem::forget(tail);
            Ok(())
        } else {
            Err(tail)
        }
    }

    /// Writes `bytes` as the whole packet; false if it does not fit the buffer.
    pub fn set_data(&mut self, bytes: &[u8]) -> bool {
        let Ok(len) = u16::try_from(bytes.len()) else {
            return false;
        };
        let cur = self.len() as u16;
        if cur > 0 && !self.trim(cur) {
            return false;
        }
        match self.append(len) {
            Some(buf) => {
                buf.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; rte_pktmbuf_free returns it (and any chained segments) to
        // its pool.
        unsafe { dpdk_sys::sluice_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl crate::pipeline::PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }

    #[inline(always)]
    fn prefetch_descriptor(&self) {
        // buf_addr, data_off and data_len: all in the first line of `rte_mbuf`.
        crate::mem::prefetch(self.as_ptr());
    }

    #[inline(always)]
    fn is_segmented(&self) -> bool {
        self.segments() > 1
    }

    #[inline(always)]
    fn rx_ip_checksum_bad(&self) -> bool {
        Mbuf::rx_ip_checksum_bad(self)
    }

    #[inline(always)]
    fn rx_ip_checksum_checked(&self) -> bool {
        Mbuf::rx_ip_checksum_checked(self)
    }

    fn resize(&mut self, len: usize) -> bool {
        let cur = self.len();
        if len <= cur {
            return u16::try_from(cur - len).is_ok_and(|n| self.trim(n));
        }
        match u16::try_from(len - cur).ok().and_then(|n| self.append(n)) {
            Some(tail) => {
                tail.fill(0);
                true
            }
            None => false,
        }
    }

    /// Uses the headroom (no copy of the packet).
    fn push_front(&mut self, n: usize) -> bool {
        u16::try_from(n).is_ok_and(|n| self.prepend(n).is_some())
    }

    fn pop_front(&mut self, n: usize) -> bool {
        u16::try_from(n).is_ok_and(|n| self.adj(n))
    }
}
