//! IP fragments of load-balanced flows.
//!
//! Policy: the first fragment (offset 0) carries the ports, so it goes through the connection
//! table like any packet; after it is translated, its datagram's identity (source,
//! destination, protocol, IP id) and its translated addresses are recorded in a tracker all
//! workers share. Later fragments (no ports) look their datagram up there, get the same
//! addresses and leave towards the same next hop. A later fragment whose first fragment was not
//! seen (reordered ahead of it, or older than the tracking time) is dropped and counted
//! (`fragment`). Nothing is reassembled: the backend reassembles.
//!
//! The tracker is fixed-size with one [`SeqLock`] per slot, like the neighbour cache: lock-free
//! reads, a compare-and-swap per write, a probe window of 8; a slot is reused when its entry
//! is older than the tracking time, or the oldest of the window is evicted.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::flow::Addr;
use crate::seqlock::SeqLock;

const PROBE: usize = 8;
/// How long a first fragment's translation is kept, in milliseconds.
pub const TRACK_MS: u32 = 5_000;

/// Identity of one fragmented datagram as it arrived.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DatagramKey {
    pub src: Addr,
    pub dst: Addr,
    pub proto: u8,
    pub id: u32,
}

/// The addresses the datagram's first fragment was translated to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Translation {
    pub src: Addr,
    pub dst: Addr,
}

#[derive(Debug, Default)]
struct Slot {
    lock: SeqLock,
    created: AtomicU32,
    /// key src, key dst, new src, new dst: two words each.
    words: [AtomicU64; 8],
    /// proto << 32 | id; 0 in a slot never written (proto 0 is never tracked).
    meta: AtomicU64,
}

/// The shared tracker of first fragments.
#[derive(Debug)]
pub struct FragmentTracker {
    slots: Box<[Slot]>,
    mask: usize,
}

fn split(a: &Addr) -> (u64, u64) {
    let v = u128::from_be_bytes(a.0);
    ((v >> 64) as u64, v as u64)
}

fn join(hi: u64, lo: u64) -> Addr {
    Addr(((u128::from(hi) << 64) | u128::from(lo)).to_be_bytes())
}

impl FragmentTracker {
    pub fn new(capacity: usize) -> FragmentTracker {
        let size = capacity.max(64).next_power_of_two();
        FragmentTracker {
            slots: (0..size).map(|_| Slot::default()).collect(),
            mask: size - 1,
        }
    }

    fn home(&self, key: &DatagramKey) -> usize {
        let (a, b) = split(&key.src);
        let (c, d) = split(&key.dst);
        let h = crate::flow::mix(
            a ^ c ^ (u64::from(key.proto) << 32 | u64::from(key.id)),
            b ^ d.rotate_left(17),
        );
        h as usize & self.mask
    }

    /// A consistent read of slot `i`: (key, translation, created), or `None` if busy/empty.
    fn read(&self, i: usize) -> Option<(DatagramKey, Translation, u32)> {
        let slot = self.slots.get(i & self.mask)?;
        let (w, meta, created) = slot.lock.read(|| {
            let w: [u64; 8] = std::array::from_fn(|k| slot.words[k].load(Ordering::Relaxed));
            (
                w,
                slot.meta.load(Ordering::Relaxed),
                slot.created.load(Ordering::Relaxed),
            )
        })?;
        if meta == 0 {
            return None;
        }
        Some((
            DatagramKey {
                src: join(w[0], w[1]),
                dst: join(w[2], w[3]),
                proto: (meta >> 32) as u8,
                id: meta as u32,
            },
            Translation {
                src: join(w[4], w[5]),
                dst: join(w[6], w[7]),
            },
            created,
        ))
    }

    /// Records the translation of a first fragment at tick `now`; false if the slot it needed
    /// was busy (the later fragments are then dropped as untracked).
    pub fn record(&self, key: &DatagramKey, t: &Translation, now: u32) -> bool {
        let home = self.home(key);
        let mut target = None;
        let mut oldest: Option<(usize, u32)> = None;
        for i in home..home + PROBE {
            match self.read(i) {
                None => {
                    target.get_or_insert(i);
                }
                Some((k, _, created)) => {
                    let age = now.wrapping_sub(created);
                    if k == *key || age >= TRACK_MS {
                        target = Some(i);
                        break;
                    }
                    if oldest.is_none_or(|(_, a)| age > a) {
                        oldest = Some((i, age));
                    }
                }
            }
        }
        let Some(i) = target.or(oldest.map(|(i, _)| i)) else {
            return false;
        };
        let Some(slot) = self.slots.get(i & self.mask) else {
            return false;
        };
        let words = [
            split(&key.src),
            split(&key.dst),
            split(&t.src),
            split(&t.dst),
        ];
        slot.lock.try_write(|| {
            for (k, (hi, lo)) in words.iter().enumerate() {
                slot.words[2 * k].store(*hi, Ordering::Relaxed);
                slot.words[2 * k + 1].store(*lo, Ordering::Relaxed);
            }
            slot.meta.store(
                u64::from(key.proto) << 32 | u64::from(key.id),
                Ordering::Relaxed,
            );
            slot.created.store(now, Ordering::Relaxed);
        })
    }

    /// The translation recorded for `key` within the tracking time.
    pub fn lookup(&self, key: &DatagramKey, now: u32) -> Option<Translation> {
        let home = self.home(key);
        (home..home + PROBE).find_map(|i| {
            let (k, t, created) = self.read(i)?;
            (k == *key && now.wrapping_sub(created) < TRACK_MS).then_some(t)
        })
    }
}

/// Rewrites a later fragment's IP addresses to `t` and decrements its TTL / hop limit, with
/// an incremental IPv4 header checksum update (there is no L4 header to fix).
pub(super) fn rewrite_addrs(
    frame: &mut [u8],
    info: &crate::wire::PacketInfo,
    t: &Translation,
) -> bool {
    use super::rewrite::{read16, write16};
    use crate::wire::checksum;
    let l3 = usize::from(info.l3_offset);
    match info.ip_version {
        4 if frame.len() >= l3 + 20 => {
            let mut sum = read16(frame, l3 + 10);
            sum = checksum::update_addr4(sum, &info.src.v4_octets(), &t.src.v4_octets());
            sum = checksum::update_addr4(sum, &info.dst.v4_octets(), &t.dst.v4_octets());
            let (ttl, proto) = (frame[l3 + 8], frame[l3 + 9]);
            sum = checksum::update_u16(
                sum,
                u16::from_be_bytes([ttl, proto]),
                u16::from_be_bytes([ttl.saturating_sub(1), proto]),
            );
            frame[l3 + 8] = ttl.saturating_sub(1);
            frame[l3 + 12..l3 + 16].copy_from_slice(&t.src.v4_octets());
            frame[l3 + 16..l3 + 20].copy_from_slice(&t.dst.v4_octets());
            write16(frame, l3 + 10, sum);
            true
        }
        6 if frame.len() >= l3 + 40 => {
            frame[l3 + 7] = frame[l3 + 7].saturating_sub(1);
            frame[l3 + 8..l3 + 24].copy_from_slice(&t.src.0);
            frame[l3 + 24..l3 + 40].copy_from_slice(&t.dst.0);
            true
        }
        _ => false,
    }
}

impl super::Worker {
    /// After a first fragment was translated: remember its datagram's translation.
    // Off the established-flow path: kept out of line so the hot function stays small.
    #[cold]
    #[inline(never)]
    pub(super) fn track_first_fragment(
        &mut self,
        info: &crate::wire::PacketInfo,
        translated: &crate::flow::FlowKey,
        now: crate::conntrack::Tick,
    ) {
        let Some(fragment) = info.fragment else {
            return;
        };
        let key = DatagramKey {
            src: info.src,
            dst: info.dst,
            proto: info.l4_proto,
            id: fragment.id,
        };
        let t = Translation {
            src: translated.src,
            dst: translated.dst,
        };
        if self.cfg.fragments.record(&key, &t, now.0) {
            self.counters.fragments_tracked.inc();
        }
    }

    /// A fragment without the L4 header: follows its first fragment's translation, or is
    /// dropped when that was not seen.
    // Off the established-flow path: kept out of line so the hot function stays small.
    #[cold]
    #[inline(never)]
    pub(super) fn later_fragment<B: super::PacketBuf + ?Sized>(
        &mut self,
        snap: &crate::snapshot::Snapshot,
        pkt: &mut B,
        info: &crate::wire::PacketInfo,
        now: crate::conntrack::Tick,
    ) -> super::Verdict {
        use super::{DropReason, Verdict};
        let Some(fragment) = info.fragment else {
            return Verdict::Drop(DropReason::Fragment);
        };
        let key = DatagramKey {
            src: info.src,
            dst: info.dst,
            proto: info.l4_proto,
            id: fragment.id,
        };
        let Some(t) = self.cfg.fragments.lookup(&key, now.0) else {
            return Verdict::Drop(DropReason::Fragment);
        };
        if info.ttl <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let frame = pkt.data_mut();
        if !rewrite_addrs(frame, info, &t) {
            return Verdict::Drop(DropReason::Malformed(crate::wire::ParseError::Truncated));
        }
        self.counters.fragments_forwarded.inc();
        self.address_l2(snap, pkt, info.vlan, &t.dst, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> DatagramKey {
        DatagramKey {
            src: Addr::from_v4([198, 18, 0, 5]),
            dst: Addr::from_v4([198, 18, 100, 10]),
            proto: 17,
            id,
        }
    }

    #[test]
    fn records_looks_up_and_forgets_after_the_tracking_time() {
        let t = FragmentTracker::new(64);
        let tr = Translation {
            src: Addr::from_v4([198, 19, 0, 250]),
            dst: Addr::from_v4([198, 19, 0, 1]),
        };
        assert!(t.record(&key(7), &tr, 100));
        assert_eq!(t.lookup(&key(7), 200), Some(tr));
        assert_eq!(t.lookup(&key(8), 200), None);
        assert_eq!(t.lookup(&key(7), 100 + TRACK_MS), None);
        // Many datagrams: the newest are always found.
        for id in 0..10_000 {
            assert!(t.record(&key(id), &tr, 1000));
        }
        assert_eq!(t.lookup(&key(9_999), 1001), Some(tr));
    }
}
