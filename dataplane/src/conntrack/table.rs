//! The per-worker connection table.
//!
//! Layout, all allocated once in [`ConnTable::new`]:
//! - a slab `Vec<Conn>` of `capacity` entries plus a stack of free entry indices;
//! - an index of `4 * capacity` 8-byte slots, open addressing with linear probing. Each live
//!   connection occupies two slots (original and reply key), so the load factor never exceeds
//!   1/2 and there is always an empty slot to end a probe. A slot holds a 32-bit hash tag and
//!   the entry index with the direction in its low bit; a lookup hashes the key once, compares
//!   tags, and only reads the [`Conn`] on a tag match. The home slot is derived from the tag
//!   (`tag * slots >> 32`), so deletion can shift later slots back (no tombstones, no rehash,
//!   ever) without reading their connections;
//! - a pool of interned addresses (VIPs, SNAT addresses and backends: far fewer than
//!   connections, each shared by many), so a [`Conn`] stores them as 16-bit ids instead of
//!   16-byte addresses and fits one cache line: a lookup that misses the cache costs one line
//!   for the entry, not two. The price is a limit: at most [`MAX_LOCAL_ADDRS`] distinct such
//!   addresses in one worker's live connections at once (a new flow beyond it is dropped as
//!   `table_full`);
//! - the creation time of each entry, in its own array (read only when listing);
//! - a live map, one bit per entry: the expiry sweep passes 64 vacant entries with one word
//!   read instead of reading 64 cache lines (a large table mostly empty cost the fast path
//!   ~13% in cache traffic; see `expire_step`).
//!
//! Memory per connection: [`BYTES_PER_CONNECTION`] = 64 (`Conn`) + 32 (four index slots) +
//! 4 (free-stack entry) + 4 (creation time) = 104 bytes and one bit, plus the address pool: 1
//! MiB of addresses (one per possible id, so a lookup needs no bounds check: 18 instructions
//! per packet) and 10 bytes per address of capacity (1.04 MiB for small tables, 1.6 MiB from
//! 262,144 connections up).

use super::state::{ConnState, Timeouts, Tracker, Transition};
use super::{Aging, Direction, Tick};
use crate::flow::{endpoint_hash, Addr, FlowKey, Proto};
use crate::mem::{huge_page_vec, prefetch};
use core::fmt;
use core::mem::size_of;

/// Index slots per connection (two keys at a load factor of at most 1/2).
const SLOTS_PER_CONNECTION: usize = 4;

/// Memory of the table per connection of capacity: the slab entry, its index slots, its
/// free-stack entry and its creation time.
pub const BYTES_PER_CONNECTION: usize = size_of::<Conn>()
    + SLOTS_PER_CONNECTION * size_of::<Slot>()
    + size_of::<u32>()
    + size_of::<Tick>();

/// Identifies a connection in the table that returned it. Stale after the connection is
/// removed (the entry may be reused).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u32);

impl ConnId {
    /// The slab index (stable for the connection's life; useful as a compact handle).
    #[inline]
    pub fn index(self) -> u32 {
        self.0
    }
}

pub use crate::flow::NatMode;

/// What the load balancer decided for a connection. The addresses and ports that the rewrite
/// needs are in the two keys (see [`ConnTable::translated_key`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnData {
    /// Index of the service in the snapshot that created the connection.
    pub service: u32,
    /// Index of the chosen backend in that service.
    pub backend: u32,
    pub nat: NatMode,
}

/// Where a key's probe of the index starts: its hash (whose tag the slots hold) and home slot
/// (see [`ConnTable::probe`]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    hash: u64,
    home: usize,
}

impl Probe {
    /// The key's hash ([`ConnTable::hash_key`]): what an insert of the key needs after the
    /// probe found nothing.
    #[inline(always)]
    pub fn hash(&self) -> u64 {
        self.hash
    }

    #[inline(always)]
    fn tag(&self) -> u32 {
        tag_of(self.hash)
    }
}

/// An established packet's connection, as [`ConnTable::forward`] found and accounted it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Hit<'t> {
    pub dir: Direction,
    /// What the packet's addresses and ports become.
    pub translated: Translation<'t>,
    pub data: ConnData,
}

/// What a packet's addresses and ports become, read where the table keeps them (the
/// connection and its address pool): a copy into a [`FlowKey`] and its reversal cost the
/// fast path about 20 instructions per packet, and the rewrite needs only 4 bytes of each
/// IPv4 address.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Translation<'t> {
    pub src: &'t Addr,
    pub dst: &'t Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// Expired connections [`ConnTable::expire_step`] gathers before removing them.
const EXPIRE_BATCH: usize = 16;

/// What one [`ConnTable::expire_step`] did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Slab entries looked at.
    pub examined: usize,
    /// Connections removed (expired).
    pub removed: usize,
    /// Of those, connections that only [`Aging::UnderPressure`] expired (not yet established,
    /// idle less than their state's own timeout).
    pub removed_early: usize,
}

/// Why an insert failed. Nothing changed in the table.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum InsertError {
    #[error("connection table full")]
    Full,
    #[error("a connection already has this {0:?} key")]
    Duplicate(Direction),
    #[error("original and reply keys differ in protocol or are identical")]
    InvalidKeys,
    #[error("too many distinct VIP/SNAT addresses in the connection table")]
    LocalAddrsFull,
}

/// Id of an interned local address.
type LocalId = u16;
/// Marks a free slab entry (in `Conn::vip`).
const NO_LOCAL: LocalId = u16::MAX;
/// `Conn::reply_dst` when the reply goes to the client's own address (DNAT).
const CLIENT_ADDR: LocalId = u16::MAX - 1;
/// Every value a [`LocalId`] can take.
const ID_SPACE: usize = 1 << 16;
/// The most local addresses a table can intern.
pub const MAX_LOCAL_ADDRS: usize = (u16::MAX - 1) as usize;
/// The fewest addresses [`ConnTable::new`] makes room for.
pub const DEFAULT_LOCAL_ADDRS: usize = 4096;

/// The address pool [`ConnTable::new`] gives a table of `capacity`: one address per four
/// connections, within [`DEFAULT_LOCAL_ADDRS`]..=[`MAX_LOCAL_ADDRS`].
pub fn default_local_addrs(capacity: u32) -> usize {
    (capacity as usize / 4).clamp(DEFAULT_LOCAL_ADDRS, MAX_LOCAL_ADDRS)
}

/// One tracked connection: 64 bytes, one cache line. Fields compared by a lookup come first.
///
/// Original key: `client:client_port → locals[vip]:vip_port`.
/// Reply key: `locals[backend]:backend_port → (client or locals[reply_dst]):reply_dst_port`.
#[derive(Clone, Debug)]
#[repr(C, align(64))]
pub struct Conn {
    client: Addr,
    client_port: u16,
    vip_port: u16,
    backend_port: u16,
    reply_dst_port: u16,
    vip: LocalId,
    reply_dst: LocalId,
    backend: LocalId,
    proto: Proto,
    nat: NatMode,
    tracker: Tracker,
    last_seen: Tick,
    service: u32,
    backend_index: u32,
    packets: u64,
    bytes: u64,
}

impl Conn {
    const VACANT: Conn = Conn {
        client: Addr::UNSPECIFIED,
        client_port: 0,
        vip_port: 0,
        backend_port: 0,
        reply_dst_port: 0,
        vip: NO_LOCAL,
        reply_dst: NO_LOCAL,
        backend: NO_LOCAL,
        proto: Proto::Tcp,
        nat: NatMode::Dnat,
        tracker: Tracker::new(Proto::Tcp),
        last_seen: Tick(0),
        service: 0,
        backend_index: 0,
        packets: 0,
        bytes: 0,
    };

    #[inline]
    fn is_live(&self) -> bool {
        self.vip != NO_LOCAL
    }

    /// Account one packet of `bytes` bytes travelling in `dir` and advance the state.
    #[inline]
    pub fn on_packet(
        &mut self,
        dir: Direction,
        tcp_flags: u8,
        bytes: u32,
        now: Tick,
    ) -> Transition {
        self.packets = self.packets.wrapping_add(1);
        self.bytes = self.bytes.wrapping_add(u64::from(bytes));
        self.last_seen = now;
        self.tracker.on_packet(dir, tcp_flags)
    }

    #[inline]
    pub fn data(&self) -> ConnData {
        ConnData {
            service: self.service,
            backend: self.backend_index,
            nat: self.nat,
        }
    }

    #[inline]
    pub fn state(&self) -> ConnState {
        self.tracker.state()
    }

    #[inline]
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    #[inline]
    pub fn proto(&self) -> Proto {
        self.proto
    }

    /// The client's address and port (source of the original direction).
    #[inline]
    pub fn client(&self) -> (Addr, u16) {
        (self.client, self.client_port)
    }

    /// Packets in both directions.
    #[inline]
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Bytes in both directions.
    #[inline]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    #[inline]
    pub fn last_seen(&self) -> Tick {
        self.last_seen
    }

    /// Whether `key` is this connection's key in direction `dir`.
    #[inline]
    fn matches(&self, key: &FlowKey, dir: Direction, locals: &LocalAddrs) -> bool {
        if key.proto != self.proto {
            return false;
        }
        match dir {
            Direction::Original => {
                key.src_port == self.client_port
                    && key.dst_port == self.vip_port
                    && key.src == self.client
                    && locals.is(self.vip, &key.dst)
            }
            Direction::Reply => {
                key.src_port == self.backend_port
                    && key.dst_port == self.reply_dst_port
                    && locals.is(self.backend, &key.src)
                    && if self.reply_dst == CLIENT_ADDR {
                        key.dst == self.client
                    } else {
                        locals.is(self.reply_dst, &key.dst)
                    }
            }
        }
    }

    #[inline(always)]
    fn original_key(&self, locals: &LocalAddrs) -> FlowKey {
        FlowKey {
            src: self.client,
            dst: locals.addr(self.vip),
            src_port: self.client_port,
            dst_port: self.vip_port,
            proto: self.proto,
        }
    }

    /// The destination of the reply direction: the client (DNAT) or an SNAT address.
    #[inline(always)]
    fn reply_dst_addr<'a>(&'a self, locals: &'a LocalAddrs) -> &'a Addr {
        if self.reply_dst == CLIENT_ADDR {
            &self.client
        } else {
            locals.addr_ref(self.reply_dst)
        }
    }

    #[inline(always)]
    fn reply_key(&self, locals: &LocalAddrs) -> FlowKey {
        FlowKey {
            src: locals.addr(self.backend),
            dst: *self.reply_dst_addr(locals),
            src_port: self.backend_port,
            dst_port: self.reply_dst_port,
            proto: self.proto,
        }
    }
}

/// A self-contained description of a connection, for control-plane snapshots and for the
/// expiry callback (which releases the SNAT port: `reply.dst`/`reply.dst_port` under
/// [`NatMode::FullNat`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub id: ConnId,
    pub original: FlowKey,
    pub reply: FlowKey,
    pub data: ConnData,
    pub state: ConnState,
    /// Milliseconds since the connection was created.
    pub age_ms: u32,
    /// Milliseconds since its last packet.
    pub idle_ms: u32,
    pub packets: u64,
    pub bytes: u64,
}

/// One index slot: a hash tag and `entry index << 1 | direction`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(C, align(8))]
struct Slot {
    tag: u32,
    entry: u32,
}

impl Slot {
    const EMPTY: Slot = Slot {
        tag: 0,
        entry: u32::MAX,
    };

    #[inline]
    fn is_empty(self) -> bool {
        self.entry == u32::MAX
    }
}

#[inline]
fn slot_entry(index: u32, dir: Direction) -> u32 {
    index << 1 | dir as u32
}

/// The direction a slot entry (see [`slot_entry`]) stands for.
#[inline(always)]
fn entry_dir(entry: u32) -> Direction {
    if entry & 1 == 0 {
        Direction::Original
    } else {
        Direction::Reply
    }
}

#[inline]
fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// The home slot of a tag: a multiply-shift range reduction, so any slot count works and the
/// home is recoverable from the tag alone.
#[inline]
fn home_of(tag: u32, slot_count: usize) -> usize {
    ((u64::from(tag) * slot_count as u64) >> 32) as usize
}

/// How far [`ConnTable::prefetch_probe_conn`] follows a probe: one cache line of slots.
const PREFETCH_PROBE_SLOTS: usize = 64 / size_of::<Slot>();

#[inline]
fn next_slot(i: usize, slot_count: usize) -> usize {
    let n = i + 1;
    if n >= slot_count {
        0
    } else {
        n
    }
}

/// Interned VIP/SNAT addresses with reference counts: few distinct values, many users.
#[derive(Clone)]
struct LocalAddrs {
    /// Indexed by every possible id, so a lookup needs no bounds check (the ids handed out
    /// stay below the pool's capacity).
    addrs: Box<[Addr; ID_SPACE]>,
    refs: Vec<u32>,
    free: Vec<LocalId>,
    /// Open addressing over ids; `NO_LOCAL` is empty. Power-of-two length >= 2 * capacity.
    index: Vec<LocalId>,
    seed: u64,
}

impl LocalAddrs {
    fn new(capacity: usize, seed: u64) -> LocalAddrs {
        let capacity = capacity.min(MAX_LOCAL_ADDRS);
        let index_len = (capacity * 2).max(2).next_power_of_two();
        LocalAddrs {
            addrs: vec![Addr::UNSPECIFIED; ID_SPACE]
                .into_boxed_slice()
                .try_into()
                .expect("ID_SPACE addresses"),
            refs: vec![0; capacity],
            // Reversed so ids are handed out from 0 (any order is correct).
            free: (0..capacity as LocalId).rev().collect(),
            index: vec![NO_LOCAL; index_len],
            seed,
        }
    }

    #[inline]
    fn is(&self, id: LocalId, addr: &Addr) -> bool {
        self.addrs[usize::from(id)] == *addr
    }

    #[inline]
    fn addr(&self, id: LocalId) -> Addr {
        *self.addr_ref(id)
    }

    #[inline(always)]
    fn addr_ref(&self, id: LocalId) -> &Addr {
        &self.addrs[usize::from(id)]
    }

    #[inline]
    fn home(&self, addr: &Addr) -> usize {
        endpoint_hash(addr, 0, self.seed) as usize & (self.index.len() - 1)
    }

    /// The index position holding `addr`'s id, or the empty position where it would go.
    fn position(&self, addr: &Addr) -> (usize, Option<LocalId>) {
        let mask = self.index.len() - 1;
        let mut i = self.home(addr);
        for _ in 0..self.index.len() {
            match self.index.get(i).copied() {
                None | Some(NO_LOCAL) => return (i, None),
                Some(id) if self.is(id, addr) => return (i, Some(id)),
                Some(_) => i = (i + 1) & mask,
            }
        }
        (i, None)
    }

    /// The id of `addr`, interning it if new, with one more reference.
    fn acquire(&mut self, addr: &Addr) -> Option<LocalId> {
        let (pos, found) = self.position(addr);
        let id = match found {
            Some(id) => id,
            None => {
                let id = self.free.pop()?;
                let (Some(slot), Some(stored)) =
                    (self.index.get_mut(pos), self.addrs.get_mut(usize::from(id)))
                else {
                    self.free.push(id);
                    return None;
                };
                *slot = id;
                *stored = *addr;
                id
            }
        };
        if let Some(r) = self.refs.get_mut(usize::from(id)) {
            *r = r.saturating_add(1);
        }
        Some(id)
    }

    /// Drop one reference; the last one frees the id.
    fn release(&mut self, id: LocalId) {
        let Some(r) = self.refs.get_mut(usize::from(id)) else {
            return;
        };
        *r = r.saturating_sub(1);
        if *r > 0 {
            return;
        }
        let addr = self.addr(id);
        let (mut hole, found) = self.position(&addr);
        if found != Some(id) {
            return;
        }
        // Backward-shift deletion, as in the connection index.
        let mask = self.index.len() - 1;
        let mut j = hole;
        for _ in 0..self.index.len() {
            j = (j + 1) & mask;
            let Some(&other) = self.index.get(j) else {
                break;
            };
            if other == NO_LOCAL {
                break;
            }
            let home = self.home(&self.addr(other));
            if !cyclically_between(hole, home, j) {
                if let Some(h) = self.index.get_mut(hole) {
                    *h = other;
                }
                hole = j;
            }
        }
        if let Some(h) = self.index.get_mut(hole) {
            *h = NO_LOCAL;
        }
        self.free.push(id);
    }
}

/// Whether `home` lies in the cyclic interval `(hole, j]`: then the element at `j` may not move
/// back to `hole` (it would end up before its home).
#[inline]
fn cyclically_between(hole: usize, home: usize, j: usize) -> bool {
    if hole <= j {
        hole < home && home <= j
    } else {
        hole < home || home <= j
    }
}

/// The connection table of one worker. Single-threaded: it is `Send` (moved to its worker) but
/// never shared.
#[derive(Clone)]
pub struct ConnTable {
    conns: Vec<Conn>,
    /// Creation time of each entry (cold: read only to describe a connection).
    created: Vec<Tick>,
    /// Bit `i % 64` of word `i / 64` is set while entry `i` holds a connection.
    live: Vec<u64>,
    free: Vec<u32>,
    slots: Vec<Slot>,
    locals: LocalAddrs,
    seed: u64,
    len: u32,
    /// Next slab entry that [`ConnTable::expire`] examines.
    cursor: u32,
    timeouts: Timeouts,
}

impl fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnTable")
            .field("len", &self.len)
            .field("capacity", &self.conns.len())
            .field("slots", &self.slots.len())
            .field("cursor", &self.cursor)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl ConnTable {
    /// The largest capacity: slot entries hold `index << 1`, and the slot count must fit the
    /// 32-bit range reduction.
    pub const MAX_CAPACITY: u32 = 1 << 30;

    /// A table for `capacity` connections (clamped to [`ConnTable::MAX_CAPACITY`]) with default
    /// timeouts and room for [`default_local_addrs`] distinct VIP, SNAT and backend addresses.
    /// `seed` keys the hash: use a random one per process.
    pub fn new(capacity: u32, seed: u64) -> ConnTable {
        ConnTable::with_limits(
            capacity,
            default_local_addrs(capacity),
            seed,
            Timeouts::DEFAULT,
        )
    }

    /// Like [`ConnTable::new`], with the local-address pool size (clamped to
    /// [`MAX_LOCAL_ADDRS`]) and timeouts given.
    pub fn with_limits(
        capacity: u32,
        local_addrs: usize,
        seed: u64,
        timeouts: Timeouts,
    ) -> ConnTable {
        let capacity = capacity.min(Self::MAX_CAPACITY);
        let slot_count = capacity as usize * SLOTS_PER_CONNECTION;
        ConnTable {
            conns: huge_page_vec(capacity as usize, Conn::VACANT),
            created: vec![Tick(0); capacity as usize],
            live: vec![0; (capacity as usize).div_ceil(64)],
            // Popped from the end: entries are used from index 0 up.
            free: (0..capacity).rev().collect(),
            slots: huge_page_vec(slot_count, Slot::EMPTY),
            locals: LocalAddrs::new(local_addrs, seed ^ 0x6c6f_6361_6c73),
            seed,
            len: 0,
            cursor: 0,
            timeouts: timeouts.clamped(),
        }
    }

    /// Live connections.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn capacity(&self) -> usize {
        self.conns.len()
    }

    /// Bytes allocated by this table.
    pub fn memory_bytes(&self) -> usize {
        self.conns.capacity() * size_of::<Conn>()
            + self.created.capacity() * size_of::<Tick>()
            + self.live.capacity() * size_of::<u64>()
            + self.free.capacity() * size_of::<u32>()
            + self.slots.capacity() * size_of::<Slot>()
            + self.locals.addrs.len() * size_of::<Addr>()
            + self.locals.refs.capacity() * size_of::<u32>()
            + (self.locals.free.capacity() + self.locals.index.capacity()) * size_of::<LocalId>()
    }

    #[inline]
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Replace the timeouts (clamped, see [`Timeouts::clamped`]); applies to every connection
    /// from its next expiry check.
    pub fn set_timeouts(&mut self, timeouts: Timeouts) {
        self.timeouts = timeouts.clamped();
    }

    /// The hash a lookup of `key` uses; compute it early for a burst and pass it to
    /// [`ConnTable::lookup_hashed`].
    #[inline]
    pub fn hash_key(&self, key: &FlowKey) -> u64 {
        key.hash(self.seed)
    }

    /// Find the connection that `key` belongs to, and which way the packet travels.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(ConnId, Direction)> {
        self.lookup_hashed(key, self.hash_key(key))
    }

    /// Where the probe for `hash` starts: computed once per packet and passed to the
    /// prefetches and the lookup of a burst.
    #[inline(always)]
    pub fn probe(&self, hash: u64) -> Probe {
        Probe {
            hash,
            home: home_of(tag_of(hash), self.slots.len()),
        }
    }

    /// Start loading the home slot of `probe` into the cache. For a burst: hash every key and
    /// prefetch its slot, then [`ConnTable::prefetch_probe_conn`] each, then look each up, so
    /// the memory latencies of the burst overlap instead of adding up.
    #[inline(always)]
    pub fn prefetch_probe_slot(&self, probe: &Probe) {
        if probe.home < self.slots.len() {
            prefetch(self.slots.as_ptr().wrapping_add(probe.home));
        }
    }

    /// Start loading the connection of the first slot with `probe`'s tag, looking from the
    /// home slot up to the first empty one (at most [`PREFETCH_PROBE_SLOTS`]). Best after
    /// [`ConnTable::prefetch_probe_slot`]. Linear probing displaces a good share of keys from
    /// their home slot (about a fifth at a million connections); stopping at the home slot
    /// left each of those a full, unprefetched memory latency later.
    #[inline(always)]
    pub fn prefetch_probe_conn(&self, probe: &Probe) {
        let n = self.slots.len();
        let mut i = probe.home;
        for _ in 0..PREFETCH_PROBE_SLOTS {
            let Some(slot) = self.slots.get(i) else {
                return;
            };
            if slot.is_empty() {
                return;
            }
            if slot.tag == probe.tag() {
                let index = (slot.entry >> 1) as usize;
                if index < self.conns.len() {
                    // One line: a `Conn` is 64 bytes and line-aligned.
                    prefetch(self.conns.as_ptr().wrapping_add(index));
                }
                return;
            }
            i = next_slot(i, n);
        }
    }

    /// [`ConnTable::lookup`] with a hash from [`ConnTable::hash_key`].
    #[inline]
    pub fn lookup_hashed(&self, key: &FlowKey, hash: u64) -> Option<(ConnId, Direction)> {
        self.find(key, self.probe(hash)).map(|(_, entry)| {
            let dir = entry_dir(entry);
            (ConnId(entry >> 1), dir)
        })
    }

    /// The established-flow path in one pass over the table: finds the connection of `key`
    /// (probe from [`ConnTable::probe`]), accounts the packet to it ([`Conn::on_packet`]) and
    /// returns what the packet must become, built from the same entry. `None`, changing
    /// nothing, if no connection has this key.
    #[inline(always)]
    pub fn forward(
        &mut self,
        key: &FlowKey,
        probe: Probe,
        tcp_flags: u8,
        bytes: u32,
        now: Tick,
    ) -> Option<Hit<'_>> {
        let (_, entry) = self.find(key, probe)?;
        let ConnTable { conns, locals, .. } = self;
        let conn = conns.get_mut((entry >> 1) as usize)?;
        let dir = entry_dir(entry);
        // State transitions only change the idle timeout, which expiry reads from the entry.
        let _ = conn.on_packet(dir, tcp_flags, bytes, now);
        let conn = &*conn;
        // To the backend: the reply key reversed; to the client: the original key reversed.
        let translated = match dir {
            Direction::Original => Translation {
                src: conn.reply_dst_addr(locals),
                dst: locals.addr_ref(conn.backend),
                src_port: conn.reply_dst_port,
                dst_port: conn.backend_port,
            },
            Direction::Reply => Translation {
                src: locals.addr_ref(conn.vip),
                dst: &conn.client,
                src_port: conn.vip_port,
                dst_port: conn.client_port,
            },
        };
        Some(Hit {
            dir,
            translated,
            data: conn.data(),
        })
    }

    /// The slot position and slot entry of `key`.
    #[inline(always)]
    fn find(&self, key: &FlowKey, probe: Probe) -> Option<(usize, u32)> {
        let n = self.slots.len();
        let tag = probe.tag();
        let mut i = probe.home;
        // The load factor is at most 1/2, so an empty slot ends every probe; the bound only
        // guards against a broken invariant.
        for _ in 0..n {
            let slot = *self.slots.get(i)?;
            if slot.is_empty() {
                return None;
            }
            if slot.tag == tag {
                let dir = entry_dir(slot.entry);
                let conn = self.conns.get((slot.entry >> 1) as usize)?;
                if conn.matches(key, dir, &self.locals) {
                    return Some((i, slot.entry));
                }
            }
            i = next_slot(i, n);
        }
        None
    }

    /// Track a new connection under both keys. `reply` is the key that replies will arrive
    /// with: `backend → client` for DNAT, `backend → SNAT address:port` for full-NAT.
    /// Apply its first packet with [`Conn::on_packet`] like every later one.
    pub fn insert(
        &mut self,
        original: FlowKey,
        reply: FlowKey,
        data: ConnData,
        now: Tick,
    ) -> Result<ConnId, InsertError> {
        let hashes = (self.hash_key(&original), self.hash_key(&reply));
        if self.find(&original, self.probe(hashes.0)).is_some() {
            return Err(InsertError::Duplicate(Direction::Original));
        }
        self.insert_missed(original, reply, hashes, data, now)
    }

    /// [`ConnTable::insert`] for an `original` key the caller has just looked up and not found,
    /// with nothing inserted since (the pipeline opens a connection only after its lookup
    /// missed), and the keys' hashes from [`ConnTable::hash_key`] (which the pipeline has
    /// computed for that lookup and to prefetch the reply key's slot): the original key is not
    /// searched again, the reply key still is.
    pub fn insert_missed(
        &mut self,
        original: FlowKey,
        reply: FlowKey,
        (original_hash, reply_hash): (u64, u64),
        data: ConnData,
        now: Tick,
    ) -> Result<ConnId, InsertError> {
        debug_assert!(
            self.find(&original, self.probe(original_hash)).is_none(),
            "insert_missed with an original key that is in the table"
        );
        if original.proto != reply.proto || original == reply {
            return Err(InsertError::InvalidKeys);
        }
        if self.find(&reply, self.probe(reply_hash)).is_some() {
            return Err(InsertError::Duplicate(Direction::Reply));
        }
        let index = self.free.pop().ok_or(InsertError::Full)?;
        let Some(vip) = self.locals.acquire(&original.dst) else {
            self.free.push(index);
            return Err(InsertError::LocalAddrsFull);
        };
        let reply_dst = if reply.dst == original.src {
            CLIENT_ADDR
        } else if let Some(id) = self.locals.acquire(&reply.dst) {
            id
        } else {
            self.locals.release(vip);
            self.free.push(index);
            return Err(InsertError::LocalAddrsFull);
        };
        let Some(backend) = self.locals.acquire(&reply.src) else {
            self.locals.release(vip);
            if reply_dst != CLIENT_ADDR {
                self.locals.release(reply_dst);
            }
            self.free.push(index);
            return Err(InsertError::LocalAddrsFull);
        };
        let (Some(conn), Some(created)) = (
            self.conns.get_mut(index as usize),
            self.created.get_mut(index as usize),
        ) else {
            // Unreachable: free indices are < capacity.
            return Err(InsertError::Full);
        };
        *created = now;
        *conn = Conn {
            client: original.src,
            client_port: original.src_port,
            vip_port: original.dst_port,
            backend_port: reply.src_port,
            reply_dst_port: reply.dst_port,
            vip,
            reply_dst,
            backend,
            proto: original.proto,
            nat: data.nat,
            tracker: Tracker::new(original.proto),
            last_seen: now,
            service: data.service,
            backend_index: data.backend,
            packets: 0,
            bytes: 0,
        };
        self.place(original_hash, slot_entry(index, Direction::Original));
        self.place(reply_hash, slot_entry(index, Direction::Reply));
        self.set_live(index, true);
        self.len += 1;
        Ok(ConnId(index))
    }

    /// Put `entry` in the first empty slot from its home.
    fn place(&mut self, hash: u64, entry: u32) {
        let n = self.slots.len();
        let tag = tag_of(hash);
        let mut i = home_of(tag, n);
        for _ in 0..n {
            match self.slots.get_mut(i) {
                Some(slot) if slot.is_empty() => {
                    *slot = Slot { tag, entry };
                    return;
                }
                Some(_) => i = next_slot(i, n),
                None => return,
            }
        }
    }

    /// Empty the slot at `hole`, shifting later members of its probe run back so that every
    /// remaining key stays reachable from its home without crossing an empty slot.
    fn delete_slot(&mut self, mut hole: usize) {
        let n = self.slots.len();
        let mut j = hole;
        for _ in 0..n {
            j = next_slot(j, n);
            let Some(&slot) = self.slots.get(j) else {
                break;
            };
            if slot.is_empty() {
                break;
            }
            if !cyclically_between(hole, home_of(slot.tag, n), j) {
                if let Some(h) = self.slots.get_mut(hole) {
                    *h = slot;
                }
                hole = j;
            }
        }
        if let Some(h) = self.slots.get_mut(hole) {
            *h = Slot::EMPTY;
        }
    }

    /// Remove the index slot of `key` that points at `entry`.
    fn unlink(&mut self, probe: &Probe, entry: u32) {
        let n = self.slots.len();
        let mut i = probe.home;
        for _ in 0..n {
            match self.slots.get(i) {
                Some(slot) if slot.entry == entry => {
                    self.delete_slot(i);
                    return;
                }
                Some(slot) if !slot.is_empty() => i = next_slot(i, n),
                _ => return,
            }
        }
    }

    #[inline(always)]
    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get(id.0 as usize).filter(|c| c.is_live())
    }

    #[inline(always)]
    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(id.0 as usize).filter(|c| c.is_live())
    }

    /// The connection's key in direction `dir`.
    #[inline(always)]
    pub fn key(&self, id: ConnId, dir: Direction) -> Option<FlowKey> {
        let conn = self.get(id)?;
        Some(match dir {
            Direction::Original => conn.original_key(&self.locals),
            Direction::Reply => conn.reply_key(&self.locals),
        })
    }

    /// What a packet travelling in `dir` must look like after translation: the other
    /// direction's key, reversed. An original packet leaves as `reply.reversed()` (to the
    /// backend, from the client or the SNAT address); a reply leaves as `original.reversed()`
    /// (from the VIP to the client).
    #[inline]
    pub fn translated_key(&self, id: ConnId, dir: Direction) -> Option<FlowKey> {
        self.key(id, dir.opposite()).map(|k| k.reversed())
    }

    /// Everything about one connection, with ages relative to `now`.
    pub fn info(&self, id: ConnId, now: Tick) -> Option<ConnInfo> {
        let conn = self.get(id)?;
        Some(self.describe(id, conn, now))
    }

    fn describe(&self, id: ConnId, conn: &Conn, now: Tick) -> ConnInfo {
        ConnInfo {
            id,
            original: conn.original_key(&self.locals),
            reply: conn.reply_key(&self.locals),
            data: conn.data(),
            state: conn.state(),
            age_ms: now.millis_since(self.created.get(id.0 as usize).copied().unwrap_or(now)),
            idle_ms: now.millis_since(conn.last_seen),
            packets: conn.packets,
            bytes: conn.bytes,
        }
    }

    /// Remove a connection; returns what it was (so the caller can release its SNAT port), or
    /// `None` if `id` is not live.
    pub fn remove(&mut self, id: ConnId, now: Tick) -> Option<ConnInfo> {
        let probes = self.probes_of(id)?;
        self.remove_probed(id, now, &probes)
    }

    /// Where the index slots of both of `id`'s keys are looked for (original, reply).
    fn probes_of(&self, id: ConnId) -> Option<[Probe; 2]> {
        let probe = |dir| Some(self.probe(self.hash_key(&self.key(id, dir)?)));
        Some([probe(Direction::Original)?, probe(Direction::Reply)?])
    }

    /// [`ConnTable::remove`] with its keys' probes already computed.
    fn remove_probed(&mut self, id: ConnId, now: Tick, probes: &[Probe; 2]) -> Option<ConnInfo> {
        let info = self.info(id, now)?;
        self.unlink(&probes[0], slot_entry(id.0, Direction::Original));
        self.unlink(&probes[1], slot_entry(id.0, Direction::Reply));
        if let Some(conn) = self.conns.get_mut(id.0 as usize) {
            let (vip, reply_dst, backend) = (conn.vip, conn.reply_dst, conn.backend);
            *conn = Conn::VACANT;
            self.locals.release(vip);
            self.locals.release(backend);
            if reply_dst != CLIENT_ADDR {
                self.locals.release(reply_dst);
            }
        }
        self.set_live(id.0, false);
        self.free.push(id.0);
        self.len = self.len.saturating_sub(1);
        Some(info)
    }

    /// Examine at most `budget` slab entries, from where the previous call stopped, and remove
    /// those idle longer than their state's timeout, calling `on_expire` for each. Bounded
    /// work: call it once per burst; the whole table is swept every `capacity / budget` calls.
    /// Returns the number removed.
    pub fn expire(&mut self, now: Tick, budget: usize, on_expire: impl FnMut(&ConnInfo)) -> usize {
        self.expire_step(now, budget, usize::MAX, Aging::Normal, on_expire)
            .removed
    }

    /// [`ConnTable::expire`] under `aging` that also stops once it has removed `max_removed`
    /// connections (the next call goes on from there): a removal costs far more than a look
    /// at an entry.
    pub fn expire_step(
        &mut self,
        now: Tick,
        budget: usize,
        max_removed: usize,
        aging: Aging,
        mut on_expire: impl FnMut(&ConnInfo),
    ) -> Swept {
        let capacity = self.conns.len() as u32;
        let limit = budget.min(capacity as usize);
        let mut swept = Swept::default();
        // Expired entries are gathered a batch at a time and their index slots prefetched
        // before any is removed: in a large table those slots are cold, and removing each as
        // it is found waited for them one after the other.
        let mut batch = [(0u32, [Probe::default(); 2], false); EXPIRE_BATCH];
        while swept.examined < limit && swept.removed < max_removed {
            let wanted = EXPIRE_BATCH.min(max_removed - swept.removed);
            let mut gathered = 0;
            while gathered < wanted && swept.examined < limit {
                let index = self.cursor;
                // Vacant entries up to the next live one (or the end of the word, or of the
                // slab) count as examined without being read.
                let vacant = self
                    .vacant_run(index)
                    .min(capacity - index)
                    .min((limit - swept.examined) as u32);
                let step = vacant.max(1);
                swept.examined += step as usize;
                self.cursor = if index + step >= capacity {
                    0
                } else {
                    index + step
                };
                if vacant > 0 {
                    continue;
                }
                let Some(early) = self.expired(index, now, aging) else {
                    continue;
                };
                let Some(probes) = self.probes_of(ConnId(index)) else {
                    continue;
                };
                for probe in &probes {
                    self.prefetch_probe_slot(probe);
                }
                if let Some(slot) = batch.get_mut(gathered) {
                    *slot = (index, probes, early);
                    gathered += 1;
                }
            }
            for (index, probes, early) in batch.iter().take(gathered) {
                if let Some(info) = self.remove_probed(ConnId(*index), now, probes) {
                    on_expire(&info);
                    swept.removed += 1;
                    swept.removed_early += usize::from(*early);
                }
            }
        }
        swept
    }

    /// Marks entry `index` live or vacant in the live map.
    #[inline]
    fn set_live(&mut self, index: u32, live: bool) {
        let bit = 1u64 << (index % 64);
        if let Some(word) = self.live.get_mut(index as usize / 64) {
            if live {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }

    /// How many vacant entries lie from `index` to the next live one within `index`'s word of
    /// the live map (to the word's end if none is live there).
    #[inline]
    fn vacant_run(&self, index: u32) -> u32 {
        let word = self.live.get(index as usize / 64).copied().unwrap_or(0);
        let ahead = word >> (index % 64);
        if ahead == 0 {
            64 - index % 64
        } else {
            ahead.trailing_zeros()
        }
    }

    /// If the entry at `index` holds a connection idle at least its state's timeout under
    /// `aging`: whether only that aging expired it (`true`: early, under pressure).
    #[inline]
    fn expired(&self, index: u32, now: Tick, aging: Aging) -> Option<bool> {
        let conn = self.conns.get(index as usize).filter(|c| c.is_live())?;
        let idle = now.millis_since(conn.last_seen);
        let timeout = conn.tracker.timeout(conn.proto, &self.timeouts);
        let under_aging = conn
            .tracker
            .timeout_under(conn.proto, &self.timeouts, aging);
        (idle >= under_aging).then_some(idle < timeout)
    }

    /// Every live connection, for a control-plane snapshot (walks the whole live map and
    /// every live entry: not for the packet path). A large, mostly empty table is not read
    /// whole: only the entries whose bit is set.
    pub fn iter(&self, now: Tick) -> impl Iterator<Item = ConnInfo> + '_ {
        self.live
            .iter()
            .enumerate()
            .flat_map(|(w, &word)| {
                (0..64u32)
                    .filter(move |bit| word & (1u64 << bit) != 0)
                    .map(move |bit| w as u32 * 64 + bit)
            })
            .filter_map(move |i| {
                let conn = self.conns.get(i as usize).filter(|c| c.is_live())?;
                Some(self.describe(ConnId(i), conn, now))
            })
    }

    /// Check the index invariants (tests only): every slot is reachable from its home without
    /// crossing an empty slot, points at a live entry whose key hashes to its tag, and every
    /// live entry has exactly its two slots.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let n = self.slots.len();
        let mut occupied = 0;
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.is_empty() {
                continue;
            }
            occupied += 1;
            let mut j = home_of(slot.tag, n);
            while j != i {
                assert!(!self.slots[j].is_empty(), "slot {i} unreachable from home");
                j = next_slot(j, n);
            }
            let id = ConnId(slot.entry >> 1);
            let dir = entry_dir(slot.entry);
            let key = self.key(id, dir).expect("slot points at a free entry");
            assert_eq!(tag_of(self.hash_key(&key)), slot.tag);
            assert_eq!(self.lookup(&key), Some((id, dir)));
        }
        assert_eq!(occupied, 2 * self.len());
        assert_eq!(self.free.len() + self.len(), self.capacity());
        for (i, conn) in self.conns.iter().enumerate() {
            let marked = self.live[i / 64] & (1u64 << (i % 64)) != 0;
            assert_eq!(marked, conn.is_live(), "live map bit of entry {i}");
        }
        for i in self.capacity()..self.live.len() * 64 {
            assert_eq!(
                self.live[i / 64] & (1u64 << (i % 64)),
                0,
                "live bit {i} past the slab"
            );
        }
        let mut refs = vec![0u32; self.locals.refs.len()];
        for conn in self.conns.iter().filter(|c| c.is_live()) {
            refs[usize::from(conn.vip)] += 1;
            refs[usize::from(conn.backend)] += 1;
            if conn.reply_dst != CLIENT_ADDR {
                refs[usize::from(conn.reply_dst)] += 1;
            }
        }
        assert_eq!(refs, self.locals.refs);
    }
}

#[cfg(test)]
mod tests;
