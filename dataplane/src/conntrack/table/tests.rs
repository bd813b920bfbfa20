use super::*;
use crate::conntrack::tcp_flags::{ACK, FIN, SYN};
use proptest::prelude::*;
use std::collections::HashMap;

const VIP: Addr = Addr::from_v4([198, 18, 100, 10]);
const SNAT: Addr = Addr::from_v4([198, 18, 200, 1]);

fn client(n: u32) -> Addr {
    let [_, a, b, c] = n.to_be_bytes();
    Addr::from_v4([198, 19, a.wrapping_add(b), c])
}

fn backend(n: u8) -> Addr {
    Addr::from_v4([198, 18, 1, n])
}

fn original(client_addr: Addr, client_port: u16, proto: Proto) -> FlowKey {
    FlowKey {
        src: client_addr,
        dst: VIP,
        src_port: client_port,
        dst_port: 80,
        proto,
    }
}

fn dnat_reply(orig: &FlowKey, backend_addr: Addr) -> FlowKey {
    FlowKey {
        src: backend_addr,
        dst: orig.src,
        src_port: 8080,
        dst_port: orig.src_port,
        proto: orig.proto,
    }
}

fn fullnat_reply(orig: &FlowKey, backend_addr: Addr, snat_port: u16) -> FlowKey {
    FlowKey {
        src: backend_addr,
        dst: SNAT,
        src_port: 8080,
        dst_port: snat_port,
        proto: orig.proto,
    }
}

fn data(nat: NatMode) -> ConnData {
    ConnData {
        service: 7,
        backend: 3,
        nat,
    }
}

#[test]
fn conn_is_compact() {
    assert_eq!(size_of::<Conn>(), 64);
    assert_eq!(
        core::mem::align_of::<Conn>(),
        64,
        "one entry, one cache line"
    );
    assert_eq!(size_of::<Slot>(), 8);
    assert_eq!(BYTES_PER_CONNECTION, 104);
    assert!(size_of::<Conn>() + SLOTS_PER_CONNECTION * size_of::<Slot>() <= 128);
    let table = ConnTable::new(10_000, 1);
    let fixed = table.memory_bytes() - 10_000 * BYTES_PER_CONNECTION;
    // The address pool: 1 MiB of addresses (every id) and 10 bytes per address of capacity.
    assert!(fixed < 1024 * 1024 + 128 * 1024, "fixed overhead {fixed}");
}

#[test]
fn insert_then_lookup_both_directions_dnat_and_fullnat() {
    let mut t = ConnTable::new(16, 42);
    let o1 = original(client(1), 40000, Proto::Tcp);
    let r1 = dnat_reply(&o1, backend(1));
    let id1 = t.insert(o1, r1, data(NatMode::Dnat), Tick(5)).unwrap();
    let o2 = original(client(2), 40001, Proto::Udp);
    let r2 = fullnat_reply(&o2, backend(2), 30000);
    let id2 = t.insert(o2, r2, data(NatMode::FullNat), Tick(5)).unwrap();
    assert_eq!(t.len(), 2);

    assert_eq!(t.lookup(&o1), Some((id1, Direction::Original)));
    assert_eq!(t.lookup(&r1), Some((id1, Direction::Reply)));
    assert_eq!(t.lookup(&o2), Some((id2, Direction::Original)));
    assert_eq!(t.lookup(&r2), Some((id2, Direction::Reply)));
    assert_eq!(t.lookup(&o1.reversed()), None);
    assert_eq!(t.lookup(&FlowKey { dst_port: 81, ..o1 }), None);
    assert_eq!(
        t.lookup(&FlowKey {
            proto: Proto::Udp,
            ..o1
        }),
        None
    );
    assert_eq!(t.key(id1, Direction::Original), Some(o1));
    assert_eq!(t.key(id2, Direction::Reply), Some(r2));

    // DNAT: to the backend from the client; replies from the VIP.
    let out = t.translated_key(id1, Direction::Original).unwrap();
    assert_eq!((out.src, out.src_port), (client(1), 40000));
    assert_eq!((out.dst, out.dst_port), (backend(1), 8080));
    assert_eq!(t.translated_key(id1, Direction::Reply), Some(o1.reversed()));
    // Full-NAT: to the backend from the SNAT address.
    let out = t.translated_key(id2, Direction::Original).unwrap();
    assert_eq!((out.src, out.src_port), (SNAT, 30000));
    assert_eq!((out.dst, out.dst_port), (backend(2), 8080));
    assert_eq!(t.translated_key(id2, Direction::Reply), Some(o2.reversed()));

    let conn = t.get(id2).unwrap();
    assert_eq!(conn.data(), data(NatMode::FullNat));
    assert_eq!(conn.state(), ConnState::Unreplied);
    assert_eq!(conn.client(), (client(2), 40001));
    let info = t.info(id2, Tick(0)).unwrap();
    assert_eq!((info.reply.src, info.reply.src_port), (backend(2), 8080));
    t.check_invariants();
}

#[test]
fn packets_update_counters_and_state() {
    let mut t = ConnTable::new(4, 1);
    let o = original(client(1), 1234, Proto::Tcp);
    let id = t
        .insert(o, dnat_reply(&o, backend(1)), data(NatMode::Dnat), Tick(0))
        .unwrap();
    let conn = t.get_mut(id).unwrap();
    assert_eq!(
        conn.on_packet(Direction::Original, SYN, 60, Tick(1)),
        Transition::None
    );
    assert_eq!(
        conn.on_packet(Direction::Reply, SYN | ACK, 60, Tick(2)),
        Transition::None
    );
    assert_eq!(
        conn.on_packet(Direction::Original, ACK, 52, Tick(3)),
        Transition::Established
    );
    assert_eq!((conn.packets(), conn.bytes()), (3, 172));
    assert_eq!(conn.last_seen(), Tick(3));
    let info = t.info(id, Tick(10)).unwrap();
    assert_eq!(info.state, ConnState::Established);
    assert_eq!((info.age_ms, info.idle_ms), (10, 7));
}

#[test]
fn remove_unlinks_both_keys_and_frees_the_entry() {
    let mut t = ConnTable::new(2, 9);
    let o = original(client(1), 1000, Proto::Tcp);
    let r = fullnat_reply(&o, backend(1), 2000);
    let id = t.insert(o, r, data(NatMode::FullNat), Tick(0)).unwrap();
    let info = t.remove(id, Tick(4)).unwrap();
    assert_eq!((info.original, info.reply), (o, r));
    assert_eq!(t.len(), 0);
    assert_eq!(t.lookup(&o), None);
    assert_eq!(t.lookup(&r), None);
    assert!(t.get(id).is_none());
    assert!(
        t.remove(id, Tick(4)).is_none(),
        "a stale id removes nothing"
    );
    assert!(
        t.get(ConnId(999)).is_none(),
        "an id out of range is not a panic"
    );
    t.check_invariants();
    // The entry and the interned addresses are reusable.
    let id2 = t.insert(o, r, data(NatMode::FullNat), Tick(5)).unwrap();
    assert_eq!(t.lookup(&r), Some((id2, Direction::Reply)));
    t.check_invariants();
}

#[test]
fn a_full_table_refuses_without_changing() {
    let mut t = ConnTable::new(3, 5);
    for i in 0..3 {
        let o = original(client(i), 1000, Proto::Udp);
        t.insert(o, dnat_reply(&o, backend(1)), data(NatMode::Dnat), Tick(0))
            .unwrap();
    }
    let o = original(client(99), 1000, Proto::Udp);
    assert_eq!(
        t.insert(o, dnat_reply(&o, backend(1)), data(NatMode::Dnat), Tick(0)),
        Err(InsertError::Full)
    );
    assert_eq!(t.len(), 3);
    assert_eq!(t.lookup(&o), None);
    t.check_invariants();

    let mut empty = ConnTable::new(0, 5);
    assert_eq!(
        empty.insert(o, dnat_reply(&o, backend(1)), data(NatMode::Dnat), Tick(0)),
        Err(InsertError::Full)
    );
    assert_eq!(empty.lookup(&o), None);
    assert_eq!(empty.expire(Tick(0), 100, |_| {}), 0);
}

#[test]
fn duplicate_and_invalid_keys_are_refused() {
    let mut t = ConnTable::new(8, 5);
    let o = original(client(1), 1000, Proto::Tcp);
    let r = fullnat_reply(&o, backend(1), 5000);
    t.insert(o, r, data(NatMode::FullNat), Tick(0)).unwrap();
    let other_reply = fullnat_reply(&o, backend(2), 5001);
    assert_eq!(
        t.insert(o, other_reply, data(NatMode::FullNat), Tick(0)),
        Err(InsertError::Duplicate(Direction::Original))
    );
    let other_orig = original(client(2), 1000, Proto::Tcp);
    assert_eq!(
        t.insert(other_orig, r, data(NatMode::FullNat), Tick(0)),
        Err(InsertError::Duplicate(Direction::Reply))
    );
    // A reply key equal to another connection's original key is a duplicate too.
    assert_eq!(
        t.insert(other_orig, o, data(NatMode::FullNat), Tick(0)),
        Err(InsertError::Duplicate(Direction::Reply))
    );
    let udp_reply = FlowKey {
        proto: Proto::Udp,
        ..other_reply
    };
    assert_eq!(
        t.insert(other_orig, udp_reply, data(NatMode::FullNat), Tick(0)),
        Err(InsertError::InvalidKeys)
    );
    assert_eq!(
        t.insert(other_orig, other_orig, data(NatMode::Dnat), Tick(0)),
        Err(InsertError::InvalidKeys)
    );
    assert_eq!(t.len(), 1);
    t.check_invariants();
}

/// The pipeline's insert after a lookup miss skips the original key's search; its promise is
/// checked in debug builds (every test run).
#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "insert_missed with an original key that is in the table")]
fn insert_missed_with_a_present_original_key_is_caught_in_debug_builds() {
    let mut t = ConnTable::new(8, 5);
    let o = original(client(1), 1000, Proto::Tcp);
    t.insert(
        o,
        fullnat_reply(&o, backend(1), 5000),
        data(NatMode::FullNat),
        Tick(0),
    )
    .unwrap();
    let hashes = (
        t.hash_key(&o),
        t.hash_key(&fullnat_reply(&o, backend(2), 5001)),
    );
    let _ = t.insert_missed(
        o,
        fullnat_reply(&o, backend(2), 5001),
        hashes,
        data(NatMode::FullNat),
        Tick(0),
    );
}

#[test]
fn a_full_local_address_pool_refuses_and_leaks_nothing() {
    // Room for two addresses: a DNAT connection needs its VIP and its backend, a full-NAT one
    // the SNAT address as well.
    let mut t = ConnTable::with_limits(8, 2, 3, Timeouts::DEFAULT);
    let o = original(client(1), 1000, Proto::Tcp);
    assert_eq!(
        t.insert(
            o,
            fullnat_reply(&o, backend(1), 7),
            data(NatMode::FullNat),
            Tick(0)
        ),
        Err(InsertError::LocalAddrsFull)
    );
    t.check_invariants();
    assert_eq!(t.locals.free.len(), 2, "nothing held after the refusal");
    let id = t
        .insert(o, dnat_reply(&o, backend(1)), data(NatMode::Dnat), Tick(0))
        .unwrap();
    // The same VIP and backend again: shared, no new address.
    let o_same = original(client(2), 1000, Proto::Tcp);
    t.insert(
        o_same,
        dnat_reply(&o_same, backend(1)),
        data(NatMode::Dnat),
        Tick(0),
    )
    .unwrap();
    // A new backend does not fit.
    let o3 = original(client(3), 1000, Proto::Tcp);
    assert_eq!(
        t.insert(
            o3,
            dnat_reply(&o3, backend(2)),
            data(NatMode::Dnat),
            Tick(0)
        ),
        Err(InsertError::LocalAddrsFull)
    );
    // Nor a new VIP.
    let o2 = FlowKey {
        dst: SNAT,
        ..original(client(4), 1000, Proto::Tcp)
    };
    assert_eq!(
        t.insert(
            o2,
            dnat_reply(&o2, backend(1)),
            data(NatMode::Dnat),
            Tick(0)
        ),
        Err(InsertError::LocalAddrsFull)
    );
    t.check_invariants();
    // Once the first VIP's connections are gone, its slot is free for the other.
    t.remove(id, Tick(0)).unwrap();
    let (same_id, _) = t.lookup(&o_same).unwrap();
    t.remove(same_id, Tick(0)).unwrap();
    assert_eq!(t.locals.free.len(), 2, "every reference released");
    t.insert(
        o2,
        dnat_reply(&o2, backend(1)),
        data(NatMode::Dnat),
        Tick(0),
    )
    .unwrap();
    t.check_invariants();
}

#[test]
fn default_address_pool_scales_with_capacity() {
    assert_eq!(default_local_addrs(16), DEFAULT_LOCAL_ADDRS);
    assert_eq!(default_local_addrs(1 << 18), MAX_LOCAL_ADDRS);
    assert_eq!(default_local_addrs(1 << 20), MAX_LOCAL_ADDRS);
    assert_eq!(default_local_addrs(100_000), 25_000);
}

/// Sweep the whole table once.
fn sweep(t: &mut ConnTable, now: Tick) -> Vec<ConnInfo> {
    let mut expired = Vec::new();
    let capacity = t.capacity();
    t.expire(now, capacity, |info| expired.push(*info));
    expired
}

#[test]
fn expiry_follows_the_state_timeouts() {
    let to = Timeouts::DEFAULT;
    let mut t = ConnTable::new(8, 77);
    let tcp = |t: &mut ConnTable, n: u32, flags: &[(Direction, u8)]| {
        let o = original(client(n), 1000, Proto::Tcp);
        let id = t
            .insert(o, dnat_reply(&o, backend(1)), data(NatMode::Dnat), Tick(0))
            .unwrap();
        for &(dir, f) in flags {
            t.get_mut(id).unwrap().on_packet(dir, f, 60, Tick(0));
        }
        id
    };
    use Direction::{Original as O, Reply as R};
    let syn_only = tcp(&mut t, 1, &[(O, SYN)]);
    let established = tcp(&mut t, 2, &[(O, SYN), (R, SYN | ACK), (O, ACK)]);
    let closed = tcp(
        &mut t,
        3,
        &[
            (O, SYN),
            (R, SYN | ACK),
            (O, ACK),
            (O, FIN | ACK),
            (R, FIN | ACK),
            (O, ACK),
        ],
    );
    let fin_wait = tcp(&mut t, 4, &[(O, SYN), (R, SYN | ACK), (O, ACK), (R, FIN)]);
    assert_eq!(t.get(closed).unwrap().state(), ConnState::TimeWait);
    assert_eq!(t.get(fin_wait).unwrap().state(), ConnState::FinWait);

    assert!(sweep(&mut t, Tick(to.tcp_syn - 1)).is_empty());
    let gone: Vec<ConnId> = sweep(&mut t, Tick(to.tcp_syn))
        .iter()
        .map(|i| i.id)
        .collect();
    // tcp_syn, tcp_fin and tcp_time_wait are all 120 s by default.
    assert_eq!(gone.len(), 3);
    assert!(gone.contains(&syn_only) && gone.contains(&closed) && gone.contains(&fin_wait));
    assert!(t.get(established).is_some());
    assert!(sweep(&mut t, Tick(to.tcp_established - 1)).is_empty());
    // A packet refreshes the idle timer.
    t.get_mut(established)
        .unwrap()
        .on_packet(O, ACK, 60, Tick(to.tcp_established - 1));
    assert!(sweep(&mut t, Tick(to.tcp_established)).is_empty());
    assert_eq!(sweep(&mut t, Tick(2 * to.tcp_established)).len(), 1);
    assert!(t.is_empty());
    t.check_invariants();
}

#[test]
fn time_wait_and_rst_use_their_own_timeouts() {
    let to = Timeouts {
        tcp_time_wait: 5_000,
        tcp_close: 1_000,
        ..Timeouts::DEFAULT
    };
    let mut t = ConnTable::with_limits(4, 16, 1, to);
    let o1 = original(client(1), 1, Proto::Tcp);
    let id1 = t
        .insert(
            o1,
            dnat_reply(&o1, backend(1)),
            data(NatMode::Dnat),
            Tick(0),
        )
        .unwrap();
    let o2 = original(client(2), 2, Proto::Tcp);
    let id2 = t
        .insert(
            o2,
            dnat_reply(&o2, backend(1)),
            data(NatMode::Dnat),
            Tick(0),
        )
        .unwrap();
    let c1 = t.get_mut(id1).unwrap();
    c1.on_packet(Direction::Original, ACK, 0, Tick(0));
    c1.on_packet(Direction::Original, FIN, 0, Tick(0));
    c1.on_packet(Direction::Reply, FIN | ACK, 0, Tick(0));
    assert_eq!(
        c1.on_packet(Direction::Original, ACK, 0, Tick(0)),
        Transition::Closed
    );
    let c2 = t.get_mut(id2).unwrap();
    c2.on_packet(Direction::Original, SYN, 0, Tick(0));
    c2.on_packet(
        Direction::Reply,
        crate::conntrack::tcp_flags::RST,
        0,
        Tick(0),
    );
    let gone: Vec<ConnId> = sweep(&mut t, Tick(1_000)).iter().map(|i| i.id).collect();
    assert_eq!(gone, vec![id2]);
    let gone: Vec<ConnId> = sweep(&mut t, Tick(5_000)).iter().map(|i| i.id).collect();
    assert_eq!(gone, vec![id1]);
}

#[test]
fn expiry_reports_what_a_snat_release_needs() {
    let mut t = ConnTable::new(4, 1);
    let o = original(client(1), 1000, Proto::Udp);
    let r = fullnat_reply(&o, backend(1), 4242);
    t.insert(o, r, data(NatMode::FullNat), Tick(0)).unwrap();
    let expired = sweep(&mut t, Tick(Timeouts::DEFAULT.udp));
    assert_eq!(expired.len(), 1);
    let info = expired[0];
    assert_eq!(info.data.nat, NatMode::FullNat);
    assert_eq!((info.reply.dst, info.reply.dst_port), (SNAT, 4242));
}

#[test]
fn iter_lists_every_live_connection() {
    let mut t = ConnTable::new(64, 3);
    let mut ids = Vec::new();
    for i in 0..40 {
        let o = original(client(i), 1000, Proto::Tcp);
        ids.push(
            t.insert(o, dnat_reply(&o, backend(1)), data(NatMode::Dnat), Tick(i))
                .unwrap(),
        );
    }
    for id in ids.iter().step_by(2) {
        t.remove(*id, Tick(50)).unwrap();
    }
    let listed: Vec<ConnInfo> = t.iter(Tick(100)).collect();
    assert_eq!(listed.len(), 20);
    for info in &listed {
        assert_eq!(
            t.lookup(&info.original),
            Some((info.id, Direction::Original))
        );
        assert_eq!(info.age_ms, 100 - info.id.index());
    }
}

/// A million connections age out over repeated calls, each doing bounded work.
#[test]
fn a_million_entries_age_out_with_bounded_work_per_call() {
    const CAPACITY: u32 = 1 << 20;
    const BUDGET: usize = 4096;
    let mut t = ConnTable::new(CAPACITY, 11);
    for i in 0..CAPACITY {
        let o = original(client(i), (i % 60000) as u16 + 1024, Proto::Udp);
        t.insert(o, dnat_reply(&o, backend(1)), data(NatMode::Dnat), Tick(0))
            .unwrap();
    }
    assert_eq!(t.len(), CAPACITY as usize);
    let calls_per_sweep = CAPACITY as usize / BUDGET;
    // Nothing is due yet: a full sweep removes nothing.
    for _ in 0..calls_per_sweep {
        assert_eq!(t.expire(Tick(1000), BUDGET, |_| {}), 0);
    }
    let now = Tick(Timeouts::DEFAULT.udp);
    let mut calls = 0;
    let mut total = 0;
    while !t.is_empty() {
        let mut seen = 0;
        let removed = t.expire(now, BUDGET, |_| seen += 1);
        assert!(removed <= BUDGET);
        assert_eq!(removed, seen);
        total += removed;
        calls += 1;
        assert!(calls <= calls_per_sweep, "not aged out within one sweep");
    }
    assert_eq!(total, CAPACITY as usize);
    assert_eq!(calls, calls_per_sweep);
}

/// The sweep passes vacant entries by the live map, a word at a time, but keeps its pace:
/// each call examines its whole budget, and live entries anywhere (both edges of a word, the
/// last entry of a slab that is no multiple of 64 long) expire within one sweep.
#[test]
fn the_sweep_passes_vacant_entries_by_the_live_map_at_the_same_pace() {
    const CAPACITY: u32 = 1000;
    const BUDGET: usize = 100;
    const KEPT: [u32; 6] = [0, 63, 64, 127, 500, 999];
    let mut t = ConnTable::new(CAPACITY, 5);
    let key = |i: u32| original(client(i), 3000 + i as u16, Proto::Udp);
    for i in 0..CAPACITY {
        let id = t
            .insert(
                key(i),
                dnat_reply(&key(i), backend(1)),
                data(NatMode::Dnat),
                Tick(0),
            )
            .unwrap();
        assert_eq!(id.index(), i, "entries are used from 0 up");
    }
    for i in (0..CAPACITY).filter(|i| !KEPT.contains(i)) {
        t.remove(ConnId(i), Tick(0)).unwrap();
    }
    t.check_invariants();
    let listed: Vec<FlowKey> = t.iter(Tick(1)).map(|info| info.original).collect();
    assert_eq!(
        listed,
        KEPT.map(key).to_vec(),
        "listing reads the live entries only"
    );

    let now = Tick(Timeouts::DEFAULT.udp);
    let mut expired = Vec::new();
    for _ in 0..CAPACITY as usize / BUDGET {
        let swept = t.expire_step(now, BUDGET, usize::MAX, Aging::Normal, |info| {
            expired.push(info.original)
        });
        assert_eq!(swept.examined, BUDGET, "{swept:?}");
        t.check_invariants();
    }
    assert_eq!(expired, KEPT.map(key).to_vec());
    assert!(t.is_empty());
}

/// A step stops after its removals, and the next one picks up where it stopped: live entries
/// between the expired ones are kept and every index slot stays consistent.
#[test]
fn an_expire_step_stops_after_max_removed_and_the_next_goes_on() {
    let mut t = ConnTable::new(256, 3);
    for i in 0..100u32 {
        let o = original(client(i), 2000 + i as u16, Proto::Udp);
        // Every third connection stays active; the others go quiet at tick 0.
        let seen = if i % 3 == 0 {
            Tick(Timeouts::DEFAULT.udp)
        } else {
            Tick(0)
        };
        t.insert(o, dnat_reply(&o, backend(1)), data(NatMode::Dnat), seen)
            .unwrap();
    }
    let now = Tick(Timeouts::DEFAULT.udp + 1);
    let mut removed = Vec::new();
    let first = t.expire_step(now, 256, 20, Aging::Normal, |info| {
        removed.push(info.original)
    });
    assert_eq!(first.removed, 20);
    assert!(first.examined < 256, "{first:?}");
    t.check_invariants();
    let rest = t.expire_step(now, 256, usize::MAX, Aging::Normal, |info| {
        removed.push(info.original)
    });
    assert_eq!(rest.removed, 66 - 20);
    t.check_invariants();
    assert_eq!(t.len(), 34);
    for i in 0..100u32 {
        let o = original(client(i), 2000 + i as u16, Proto::Udp);
        assert_eq!(t.lookup(&o).is_some(), i % 3 == 0, "connection {i}");
        assert_eq!(removed.contains(&o), i % 3 != 0, "connection {i}");
    }
}

/// Under pressure, connections that never completed their handshake (a SYN flood's) expire
/// after `embryonic_under_pressure`; established ones and unconfirmed ones idle for less keep
/// their places, and the sweep reports which removals only the pressure caused.
#[test]
fn under_pressure_unconfirmed_connections_expire_early() {
    use Direction::{Original as O, Reply as R};
    let to = Timeouts::DEFAULT;
    let short = to.embryonic_under_pressure;
    let mut t = ConnTable::new(64, 5);
    let open_as = |t: &mut ConnTable, proto, i: u32, packets: &[(Direction, u8)], at: Tick| {
        let o = original(client(i), 3000 + i as u16, proto);
        let id = t
            .insert(o, dnat_reply(&o, backend(1)), data(NatMode::Dnat), at)
            .unwrap();
        for &(dir, f) in packets {
            t.get_mut(id).unwrap().on_packet(dir, f, 60, at);
        }
        o
    };
    let open = |t: &mut ConnTable, i, packets: &[(Direction, u8)], at| {
        open_as(t, Proto::Tcp, i, packets, at)
    };
    let flood: Vec<FlowKey> = (0..40)
        .map(|i| open(&mut t, i, &[(O, SYN)], Tick(0)))
        .collect();
    let half_open = open(&mut t, 40, &[(O, SYN), (R, SYN | ACK)], Tick(0));
    let established = open(&mut t, 41, &[(O, SYN), (R, SYN | ACK), (O, ACK)], Tick(0));
    let recent = open(&mut t, 42, &[(O, SYN)], Tick(short / 2));
    let udp = open_as(&mut t, Proto::Udp, 43, &[], Tick(0));

    let now = Tick(short);
    let normal = t.expire_step(now, 64, usize::MAX, Aging::Normal, |_| {});
    assert_eq!((normal.removed, normal.removed_early), (0, 0));
    let mut gone = Vec::new();
    let swept = t.expire_step(now, 64, usize::MAX, Aging::UnderPressure, |info| {
        gone.push(info.original)
    });
    t.check_invariants();
    assert_eq!((swept.removed, swept.removed_early), (42, 42), "{swept:?}");
    for key in flood.iter().chain([&half_open, &udp]) {
        assert!(gone.contains(key) && t.lookup(key).is_none(), "{key:?}");
    }
    assert!(t.lookup(&established).is_some());
    assert!(t.lookup(&recent).is_some());
    // Whatever a state's own timeout had expired anyway is not counted as early.
    let later = Tick(short / 2 + to.tcp_syn);
    let swept = t.expire_step(later, 64, usize::MAX, Aging::UnderPressure, |_| {});
    assert_eq!((swept.removed, swept.removed_early), (1, 0));
    assert!(t.lookup(&established).is_some());
}

/// A deterministic xorshift for the long randomized test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert {
        client: u8,
        port: u8,
        vip: u8,
        backend: u8,
        snat_port: Option<u8>,
    },
    Lookup {
        client: u8,
        port: u8,
        vip: u8,
    },
    Remove(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, 0u8..6, 0u8..3, 0u8..3, proptest::option::of(0u8..8)).prop_map(
            |(client, port, vip, backend, snat_port)| Op::Insert {
                client,
                port,
                vip,
                backend,
                snat_port
            }
        ),
        2 => (0u8..6, 0u8..6, 0u8..3).prop_map(|(client, port, vip)| Op::Lookup { client, port, vip }),
        3 => any::<u8>().prop_map(Op::Remove),
    ]
}

/// The model: key → (model connection, direction), and the live connections in order.
#[derive(Default)]
struct Model {
    keys: HashMap<FlowKey, (ConnId, Direction)>,
    live: Vec<(ConnId, FlowKey, FlowKey)>,
}

fn model_key(client_n: u8, port: u8, vip: u8) -> FlowKey {
    FlowKey {
        src: Addr::from_v4([198, 19, 0, client_n]),
        dst: Addr::from_v4([198, 18, 100, vip]),
        src_port: 1000 + u16::from(port),
        dst_port: 80,
        proto: Proto::Tcp,
    }
}

fn apply(t: &mut ConnTable, m: &mut Model, op: &Op, capacity: usize) {
    match *op {
        Op::Insert {
            client: c,
            port,
            vip,
            backend: b,
            snat_port,
        } => {
            let o = model_key(c, port, vip);
            let (r, nat) = match snat_port {
                Some(p) => (
                    FlowKey {
                        src: backend(b),
                        dst: SNAT,
                        src_port: 8080,
                        dst_port: 2000 + u16::from(p),
                        proto: Proto::Tcp,
                    },
                    NatMode::FullNat,
                ),
                None => (dnat_reply(&o, backend(b)), NatMode::Dnat),
            };
            let expected = if m.keys.contains_key(&o) {
                Err(InsertError::Duplicate(Direction::Original))
            } else if m.keys.contains_key(&r) {
                Err(InsertError::Duplicate(Direction::Reply))
            } else if m.live.len() == capacity {
                Err(InsertError::Full)
            } else {
                Ok(())
            };
            let got = t.insert(o, r, data(nat), Tick(0));
            assert_eq!(got.map(|_| ()), expected);
            if let Ok(id) = got {
                m.keys.insert(o, (id, Direction::Original));
                m.keys.insert(r, (id, Direction::Reply));
                m.live.push((id, o, r));
            }
        }
        Op::Lookup {
            client: c,
            port,
            vip,
        } => {
            let k = model_key(c, port, vip);
            assert_eq!(t.lookup(&k), m.keys.get(&k).copied());
        }
        Op::Remove(n) => {
            if m.live.is_empty() {
                return;
            }
            let (id, o, r) = m.live.swap_remove(usize::from(n) % m.live.len());
            let info = t.remove(id, Tick(0)).unwrap();
            assert_eq!((info.original, info.reply), (o, r));
            m.keys.remove(&o);
            m.keys.remove(&r);
        }
    }
    assert_eq!(t.len(), m.live.len());
    for (k, v) in &m.keys {
        assert_eq!(t.lookup(k).as_ref(), Some(v));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random insert/lookup/remove sequences give the same answers as a HashMap. A tiny
    /// table makes long probe runs, wrap-around and full-table refusals common.
    #[test]
    fn behaves_like_a_hashmap(capacity in 1u32..12, seed in any::<u64>(), ops in proptest::collection::vec(op(), 1..200)) {
        let mut t = ConnTable::new(capacity, seed);
        let mut m = Model::default();
        for op in &ops {
            apply(&mut t, &mut m, op, capacity as usize);
            t.check_invariants();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The sweep over the live map: whichever entries hold connections (any pattern, any
    /// capacity, multiple of 64 or not), one pass in steps of random budgets examines each
    /// step's whole budget and removes exactly the idle connections, in slab order.
    #[test]
    fn a_sweep_pass_removes_exactly_the_idle_connections(
        capacity in 1u32..300,
        // Per entry: 0 vacant, 1 idle past its timeout, 2 just seen.
        pattern in proptest::collection::vec(0u8..3, 300),
        budgets in proptest::collection::vec(1usize..100, 1..20),
    ) {
        let mut t = ConnTable::new(capacity, 9);
        let now = Tick(Timeouts::DEFAULT.udp + 10);
        let key = |i: u32| original(client(i), 5000, Proto::Udp);
        for i in 0..capacity {
            let seen = if pattern[i as usize] == 2 { now } else { Tick(0) };
            t.insert(key(i), dnat_reply(&key(i), backend(1)), data(NatMode::Dnat), seen)
                .unwrap();
        }
        for i in (0..capacity).filter(|&i| pattern[i as usize] == 0) {
            t.remove(ConnId(i), Tick(0)).unwrap();
        }
        let mut expired = Vec::new();
        let mut examined = 0;
        for &budget in budgets.iter().cycle() {
            if examined == capacity as usize {
                break;
            }
            let budget = budget.min(capacity as usize - examined);
            let swept = t.expire_step(now, budget, usize::MAX, Aging::Normal, |info| {
                expired.push(info.original)
            });
            prop_assert_eq!(swept.examined, budget);
            examined += budget;
        }
        t.check_invariants();
        let idle: Vec<FlowKey> = (0..capacity).filter(|&i| pattern[i as usize] == 1).map(key).collect();
        prop_assert_eq!(expired, idle);
    }
}

#[test]
fn long_random_churn_matches_a_hashmap() {
    const CAPACITY: u32 = 2000;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut t = ConnTable::new(CAPACITY, 1234);
    let mut live: Vec<(ConnId, FlowKey, FlowKey)> = Vec::new();
    let mut keys: HashMap<FlowKey, (ConnId, Direction)> = HashMap::new();
    for step in 0..100_000u32 {
        let r = rng.next();
        let fill = live.len() as u64 * 100 / u64::from(CAPACITY);
        if r % 100 >= fill.min(95) {
            let o = original(
                client((r >> 8) as u32 % 5000),
                (r >> 40) as u16 % 4,
                Proto::Tcp,
            );
            let reply = fullnat_reply(&o, backend((r >> 32) as u8 % 4), (r >> 48) as u16);
            match t.insert(o, reply, data(NatMode::FullNat), Tick(step)) {
                Ok(id) => {
                    assert!(!keys.contains_key(&o) && !keys.contains_key(&reply));
                    keys.insert(o, (id, Direction::Original));
                    keys.insert(reply, (id, Direction::Reply));
                    live.push((id, o, reply));
                }
                Err(InsertError::Duplicate(_)) => {
                    assert!(keys.contains_key(&o) || keys.contains_key(&reply))
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
        } else if !live.is_empty() {
            let (id, o, reply) = live.swap_remove((r >> 16) as usize % live.len());
            t.remove(id, Tick(step)).unwrap();
            keys.remove(&o);
            keys.remove(&reply);
            assert_eq!(t.lookup(&o), None);
            assert_eq!(t.lookup(&reply), None);
        }
        if step % 10_000 == 0 {
            t.check_invariants();
        }
    }
    for (k, v) in &keys {
        assert_eq!(t.lookup(k).as_ref(), Some(v));
    }
    t.check_invariants();
}

#[test]
fn the_table_moves_to_its_worker_and_prefetch_is_harmless() {
    fn assert_send<T: Send>() {}
    assert_send::<ConnTable>();
    for capacity in [0, 1, 100] {
        let mut t = ConnTable::new(capacity, 8);
        let o = original(client(1), 1000, Proto::Tcp);
        let _ = t.insert(o, dnat_reply(&o, backend(1)), data(NatMode::Dnat), Tick(0));
        for h in [0, u64::MAX, t.hash_key(&o)] {
            t.prefetch_probe_slot(&t.probe(h));
            t.prefetch_probe_conn(&t.probe(h));
            assert_eq!(
                t.lookup_hashed(&o, h).is_some(),
                capacity > 0 && h == t.hash_key(&o)
            );
        }
    }
}
