//! Per-service backend selection, prebuilt by the snapshot compiler.
//!
//! Workers never mutate anything shared here: hashing modes read an immutable Maglev table, and
//! round robin walks an immutable precomputed sequence with a cursor each worker owns
//! ([`RoundRobinCursors`]). Only backends that may take new flows (active, weight > 0) are
//! selectable; draining backends keep their existing flows through the connection table.

use super::maglev::{MaglevBackend, MaglevError, MaglevTable, MAX_BACKENDS};
use crate::flow::{endpoint_hash, mix, FlowKey};
use core::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

/// Longest round-robin sequence built from weights. Weights whose reduced sum is larger are
/// scaled down to fit (every selectable backend keeps at least one turn), which bounds memory
/// per service at the cost of weight resolution finer than 1/4096.
pub const MAX_ROUND_ROBIN_SEQUENCE: usize = 4096;

/// How a service picks a backend for a new flow.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Selection {
    /// Weighted Maglev over the 5-tuple hash: consistent across load balancers sharing the
    /// selection seed, minimal disruption when backends change.
    #[default]
    Maglev,
    /// Smooth weighted round robin, per worker.
    RoundRobin,
    /// Weighted Maglev over the client address only: a client sticks to one backend.
    SourceHash,
}

/// A service's prebuilt backend chooser. Cheap to clone (tables are shared), so an unchanged
/// service carries its selector into the next snapshot generation.
#[derive(Clone, Debug)]
pub struct Selector {
    kind: Kind,
    /// Seed of the flow/source hash; shared by load balancers that must agree on backends.
    seed: u64,
}

#[derive(Clone, Debug)]
enum Kind {
    FlowHash(Arc<MaglevTable>),
    SourceHash(Arc<MaglevTable>),
    RoundRobin(Arc<[u16]>),
}

impl Selector {
    /// Builds the selector for one service.
    ///
    /// `backends` lists every configured backend in order (what [`select`] returns indexes it);
    /// give a backend weight 0 when it must not take new flows (draining). With `persistence`
    /// any selection hashes the client address only, so a client returns to the same backend
    /// across connections (round robin has no other way to remember a client).
    ///
    /// [`select`]: Selector::select
    pub fn build(
        selection: Selection,
        persistence: bool,
        backends: &[MaglevBackend],
        table_size: u32,
        seed: u64,
    ) -> Result<Selector, MaglevError> {
        let kind = match (selection, persistence) {
            (Selection::SourceHash, _) | (_, true) => {
                Kind::SourceHash(Arc::new(MaglevTable::build(backends, table_size)?))
            }
            (Selection::Maglev, false) => {
                Kind::FlowHash(Arc::new(MaglevTable::build(backends, table_size)?))
            }
            (Selection::RoundRobin, false) => {
                if backends.len() > MAX_BACKENDS {
                    return Err(MaglevError::TooManyBackends(backends.len()));
                }
                Kind::RoundRobin(round_robin_sequence(backends).into())
            }
        };
        Ok(Selector { kind, seed })
    }

    /// The backend index for a new flow (`flow` as the client sent it), or `None` when no
    /// backend is selectable. `cursor` is this worker's round-robin position for this service
    /// (see [`RoundRobinCursors::for_service`]); hashing modes leave it alone.
    #[inline]
    pub fn select(&self, flow: &FlowKey, cursor: &mut u32) -> Option<u32> {
        match &self.kind {
            Kind::FlowHash(table) => table.lookup(flow.hash(self.seed)),
            Kind::SourceHash(table) => table.lookup(endpoint_hash(&flow.src, 0, self.seed)),
            Kind::RoundRobin(sequence) => {
                let len = sequence.len();
                let mut position = *cursor as usize;
                if position >= len {
                    // A fresh cursor or a shorter sequence since the last generation.
                    position = position.checked_rem(len)?;
                }
                let next = position + 1;
                *cursor = if next == len { 0 } else { next as u32 };
                sequence.get(position).map(|&b| u32::from(b))
            }
        }
    }

    /// The Maglev table behind a hashing selector (for statistics and disruption checks).
    pub fn maglev_table(&self) -> Option<&MaglevTable> {
        match &self.kind {
            Kind::FlowHash(table) | Kind::SourceHash(table) => Some(table),
            Kind::RoundRobin(_) => None,
        }
    }

    /// The round-robin turn order (backend indices), empty for hashing selectors.
    pub fn round_robin_sequence(&self) -> &[u16] {
        match &self.kind {
            Kind::RoundRobin(sequence) => sequence,
            Kind::FlowHash(_) | Kind::SourceHash(_) => &[],
        }
    }

    /// True when the two selectors share their built tables (no rebuild happened).
    pub fn shares_tables_with(&self, other: &Selector) -> bool {
        match (&self.kind, &other.kind) {
            (Kind::FlowHash(a), Kind::FlowHash(b)) | (Kind::SourceHash(a), Kind::SourceHash(b)) => {
                Arc::ptr_eq(a, b)
            }
            (Kind::RoundRobin(a), Kind::RoundRobin(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// One worker's round-robin positions, one per service slot of the current snapshot
/// ([`crate::snapshot::Service::slot`]). Owned by the worker, never shared, so advancing is a
/// plain store.
#[derive(Clone, Debug, Default)]
pub struct RoundRobinCursors {
    positions: Vec<u32>,
    /// Start positions differ per worker so workers do not send their first flows to the same
    /// backend in lockstep.
    stagger_seed: u64,
    /// Stands in for a slot beyond [`fit`](RoundRobinCursors::fit), so a missed resize costs
    /// balance, never a panic.
    spare: u32,
}

impl RoundRobinCursors {
    /// Cursors for the worker identified by `worker_seed` (e.g. its index).
    pub fn new(worker_seed: u64) -> RoundRobinCursors {
        RoundRobinCursors {
            positions: Vec::new(),
            stagger_seed: mix(0x7272_6375_7273_6f72, worker_seed),
            spare: 0,
        }
    }

    /// Makes room for `services` slots. Allocates only when the count grows, so call it when
    /// the snapshot changed (not per packet); existing positions are kept.
    pub fn fit(&mut self, services: usize) {
        let have = self.positions.len();
        if services > have {
            let seed = self.stagger_seed;
            // Out-of-range starts are folded into range on first use.
            self.positions
                .extend((have..services).map(|slot| mix(seed, slot as u64) as u32));
        }
    }

    /// The cursor of service slot `slot`.
    #[inline]
    pub fn for_service(&mut self, slot: usize) -> &mut u32 {
        match self.positions.get_mut(slot) {
            Some(position) => position,
            None => &mut self.spare,
        }
    }
}

/// The smooth weighted round-robin turn order over selectable backends (weight > 0), as
/// backend indices. Stride scheduling: turn k of a backend with weight w falls at virtual time
/// (k + 1/2) / w, and turns are taken in time order (ties by index), so a backend's turns are
/// spread evenly through the sequence, the interleaving nginx's smooth WRR produces. Weights are
/// reduced by their gcd first, so equal weights give one turn each.
fn round_robin_sequence(backends: &[MaglevBackend]) -> Vec<u16> {
    let weighted: Vec<(u16, u64)> = backends
        .iter()
        .zip(0u16..)
        .filter(|(b, _)| b.weight > 0)
        .map(|(b, index)| (index, u64::from(b.weight)))
        .collect();
    let divisor = weighted.iter().fold(0, |g, &(_, w)| gcd(g, w)).max(1);
    let mut turns: Vec<(u16, u64)> = weighted.iter().map(|&(i, w)| (i, w / divisor)).collect();
    let total: u64 = turns.iter().map(|&(_, t)| t).sum();
    let cap = MAX_ROUND_ROBIN_SEQUENCE as u64;
    if total > cap {
        for (_, t) in turns.iter_mut() {
            *t = (*t * cap / total).max(1);
        }
    }
    let length: u64 = turns.iter().map(|&(_, t)| t).sum();

    let mut heap: BinaryHeap<Reverse<Turn>> = turns
        .iter()
        .map(|&(index, weight)| {
            Reverse(Turn {
                twice_time_num: 1,
                weight,
                index,
                left: weight,
            })
        })
        .collect();
    let mut sequence = Vec::with_capacity(length as usize);
    while let Some(Reverse(mut turn)) = heap.pop() {
        sequence.push(turn.index);
        turn.left -= 1;
        if turn.left > 0 {
            turn.twice_time_num += 2;
            heap.push(Reverse(turn));
        }
    }
    sequence
}

/// A backend's next turn at virtual time `twice_time_num / (2 * weight)`.
#[derive(Debug, PartialEq, Eq)]
struct Turn {
    twice_time_num: u64,
    weight: u64,
    index: u16,
    left: u64,
}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> Ordering {
        // a/(2w) vs b/(2v)  <=>  a*v vs b*w, exact in u128.
        let lhs = u128::from(self.twice_time_num) * u128::from(other.weight);
        let rhs = u128::from(other.twice_time_num) * u128::from(self.weight);
        lhs.cmp(&rhs).then(self.index.cmp(&other.index))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{Addr, Proto};

    fn backends(weights: &[u32]) -> Vec<MaglevBackend> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| MaglevBackend {
                key: mix(99, i as u64),
                weight,
            })
            .collect()
    }

    fn flow(client: u8, port: u16) -> FlowKey {
        FlowKey {
            src: Addr::from_v4([198, 18, 1, client]),
            dst: Addr::from_v4([198, 18, 100, 10]),
            src_port: port,
            dst_port: 80,
            proto: Proto::Tcp,
        }
    }

    #[test]
    fn smooth_round_robin_interleaves_by_weight() {
        assert_eq!(
            round_robin_sequence(&backends(&[5, 1, 1])),
            [0, 0, 0, 1, 2, 0, 0]
        );
        assert_eq!(round_robin_sequence(&backends(&[3, 3, 3])), [0, 1, 2]);
        assert_eq!(round_robin_sequence(&backends(&[0, 2, 0, 4])), [3, 1, 3]);
        assert!(round_robin_sequence(&backends(&[0, 0])).is_empty());
    }

    #[test]
    fn round_robin_sequence_is_bounded_and_keeps_every_backend() {
        let weights: Vec<u32> = (1..=300).map(|w| w * 1000 + 1).collect();
        let sequence = round_robin_sequence(&backends(&weights));
        assert!(sequence.len() <= MAX_ROUND_ROBIN_SEQUENCE + weights.len());
        let mut counts = vec![0u32; weights.len()];
        for &b in &sequence {
            counts[b as usize] += 1;
        }
        // Scaled down to the cap: each backend within one turn of its share (min one turn).
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        for (count, weight) in counts.iter().zip(&weights) {
            let share = f64::from(*weight) * MAX_ROUND_ROBIN_SEQUENCE as f64 / total;
            assert!(*count >= 1 && (f64::from(*count) - share).abs() <= 1.0);
        }
    }

    #[test]
    fn round_robin_cursor_is_per_worker_and_wraps() {
        let selector =
            Selector::build(Selection::RoundRobin, false, &backends(&[2, 1]), 251, 0).unwrap();
        let mut worker_a = RoundRobinCursors::new(0);
        let mut worker_b = RoundRobinCursors::new(1);
        worker_a.fit(3);
        worker_b.fit(3);
        let picks_a: Vec<u32> = (0..6)
            .map(|_| {
                selector
                    .select(&flow(1, 1), worker_a.for_service(2))
                    .unwrap()
            })
            .collect();
        // Each full cycle of three holds backend 0 twice and backend 1 once.
        for cycle in picks_a.chunks(3) {
            assert_eq!(cycle.iter().filter(|&&b| b == 0).count(), 2);
        }
        // Worker b's cursor is independent of worker a's.
        let before = *worker_b.for_service(2);
        selector.select(&flow(1, 1), worker_b.for_service(2));
        assert_ne!(before, *worker_b.for_service(2));
        // A slot the worker did not fit for still works.
        assert!(selector
            .select(&flow(1, 1), worker_b.for_service(1000))
            .is_some());
    }

    #[test]
    fn draining_backends_are_not_selected() {
        // Weight 0 stands for draining; each mode must skip backend 1.
        let list = backends(&[1, 0, 1]);
        for selection in [
            Selection::Maglev,
            Selection::RoundRobin,
            Selection::SourceHash,
        ] {
            let selector = Selector::build(selection, false, &list, 251, 7).unwrap();
            let mut cursor = 0;
            for port in 0..500 {
                let b = selector
                    .select(&flow(port as u8, port), &mut cursor)
                    .unwrap();
                assert_ne!(b, 1, "{selection:?}");
            }
        }
        let none = Selector::build(Selection::RoundRobin, false, &backends(&[0]), 251, 7).unwrap();
        assert_eq!(none.select(&flow(1, 1), &mut 5), None);
    }

    #[test]
    fn source_hash_and_persistence_ignore_the_client_port() {
        let list = backends(&[1; 8]);
        for (selection, persistence) in [
            (Selection::SourceHash, false),
            (Selection::Maglev, true),
            (Selection::RoundRobin, true),
        ] {
            let selector = Selector::build(selection, persistence, &list, 251, 3).unwrap();
            for client in 0..50 {
                let first = selector.select(&flow(client, 1000), &mut 0);
                for port in 1001..1010 {
                    assert_eq!(selector.select(&flow(client, port), &mut 0), first);
                }
            }
        }
    }

    #[test]
    fn maglev_spreads_ports_of_one_client_and_depends_on_seed() {
        let list = backends(&[1; 8]);
        let a = Selector::build(Selection::Maglev, false, &list, 251, 3).unwrap();
        let b = Selector::build(Selection::Maglev, false, &list, 251, 4).unwrap();
        let picks: Vec<_> = (0..64).map(|p| a.select(&flow(1, p), &mut 0)).collect();
        let distinct: std::collections::HashSet<_> = picks.iter().collect();
        assert!(distinct.len() >= 6);
        let other: Vec<_> = (0..64).map(|p| b.select(&flow(1, p), &mut 0)).collect();
        assert_ne!(picks, other);
        assert!(a.shares_tables_with(&a.clone()) && !a.shares_tables_with(&b));
    }
}
