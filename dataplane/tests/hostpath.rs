//! The exception path's verdicts: what is addressed to the appliance's interface addresses
//! and not handled by the dataplane goes, unchanged, to the host kernel of the port it arrived
//! on; load-balanced traffic and what the dataplane answers itself do not. Frames are built
//! with etherparse.

use dataplane::conntrack::Tick;
use dataplane::flow::{Addr, NatMode, Proto};
use dataplane::lb::Selection;
use dataplane::pipeline::{DropReason, Verdict, Worker, WorkerConfig};
use dataplane::snapshot::{
    Backend, BackendState, LocalAddr, Neighbour, ServiceConfig, ServiceKey, Snapshot,
    SnapshotConfig, SnatPool,
};
use etherparse::PacketBuilder;

const LB_MAC: [[u8; 6]; 2] = [[0x02, 0, 0, 0, 0x0a, 0], [0x02, 0, 0, 0, 0x0a, 1]];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xc1, 0x01];
const BACKEND_MAC: [u8; 6] = [0x02, 0, 0, 0, 0xbe, 0x01];
const CLIENT: [u8; 4] = [198, 18, 0, 2];
/// The appliance's address on port 0 (client side) and port 1 (backend side).
const HOST0: [u8; 4] = [198, 18, 0, 1];
const HOST1: [u8; 4] = [198, 19, 0, 254];
const VIP: [u8; 4] = [198, 18, 100, 10];
const BACKEND: [u8; 4] = [198, 19, 0, 1];

fn v4(a: [u8; 4]) -> Addr {
    Addr::from_v4(a)
}

/// A DNAT service on VIP:80 and a full-NAT one on VIP:81 whose SNAT address is the backend
/// side's interface address (a common setup: the appliance's own address as source).
fn setup() -> (Worker, Snapshot) {
    let backend = Backend {
        id: 1,
        addr: v4(BACKEND),
        port: 8080,
        weight: 1,
        state: BackendState::Active,
    };
    let service = |id: u32, port: u16, mode: NatMode, pool: Option<usize>| ServiceConfig {
        id,
        name: format!("svc{id}"),
        key: ServiceKey {
            vip: v4(VIP),
            port,
            proto: Proto::Tcp,
        },
        mode,
        selection: Selection::Maglev,
        persistence: false,
        backends: vec![backend],
        snat_pool: pool,
        table_size: None,
    };
    let snap = Snapshot::compile(
        SnapshotConfig {
            generation: 1,
            services: vec![
                service(1, 80, NatMode::Dnat, None),
                service(2, 81, NatMode::FullNat, Some(0)),
            ],
            snat_pools: vec![SnatPool {
                addrs: vec![v4(HOST1)],
            }],
            neighbours: vec![
                Neighbour {
                    addr: v4(CLIENT),
                    mac: CLIENT_MAC,
                    port: 0,
                },
                Neighbour {
                    addr: v4(BACKEND),
                    mac: BACKEND_MAC,
                    port: 1,
                },
            ],
            local_addrs: vec![
                LocalAddr {
                    addr: v4(HOST0),
                    prefix_len: 24,
                    port: 0,
                },
                LocalAddr {
                    addr: v4(HOST1),
                    prefix_len: 24,
                    port: 1,
                },
            ],
            ..SnapshotConfig::default()
        },
        None,
    )
    .expect("snapshot compiles");
    let mut worker = Worker::new(WorkerConfig {
        port_macs: LB_MAC.to_vec(),
        ..WorkerConfig::default()
    })
    .expect("worker");
    worker.on_snapshot(&snap);
    (worker, snap)
}

fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, syn: bool, port: usize) -> Vec<u8> {
    let (src_mac, dst_mac) = if port == 0 {
        (CLIENT_MAC, LB_MAC[0])
    } else {
        (BACKEND_MAC, LB_MAC[1])
    };
    let builder = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, 64)
        .tcp(sport, dport, 1000, 64240);
    let builder = if syn { builder.syn() } else { builder.ack(1) };
    let mut frame = Vec::new();
    builder.write(&mut frame, b"SSH-2.0-test\r\n").unwrap();
    frame
}

fn process(worker: &mut Worker, snap: &Snapshot, frame: &[u8], ingress: u16) -> (Verdict, Vec<u8>) {
    let mut out = frame.to_vec();
    let verdict = worker.process(snap, &mut out, ingress, Tick(1), false);
    (verdict, out)
}

#[test]
fn tcp_to_an_interface_address_goes_to_the_host_unchanged() {
    let (mut w, snap) = setup();
    for syn in [true, false] {
        let frame = tcp(CLIENT, HOST0, 40000, 22, syn, 0);
        let (verdict, out) = process(&mut w, &snap, &frame, 0);
        assert_eq!(verdict, Verdict::ToHost { port: 0 });
        assert_eq!(out, frame, "the kernel gets the frame as it arrived");
    }
    // The backend-side address, from the backend side: that port's tap.
    let frame = tcp(BACKEND, HOST1, 8080, 45000, false, 1);
    assert_eq!(
        process(&mut w, &snap, &frame, 1).0,
        Verdict::ToHost { port: 1 }
    );
    // Nothing was tracked for it.
    assert_eq!(w.connections().len(), 0);
}

#[test]
fn udp_and_other_protocols_to_the_host_go_to_the_host() {
    let (mut w, snap) = setup();
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC[0])
        .ipv4(CLIENT, HOST0, 64)
        .udp(5000, 161)
        .write(&mut frame, b"snmp")
        .unwrap();
    assert_eq!(
        process(&mut w, &snap, &frame, 0).0,
        Verdict::ToHost { port: 0 }
    );
    // OSPF (IP protocol 89): no flow key, still the host's.
    let mut ospf = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC[0])
        .ipv4(CLIENT, HOST0, 1)
        .write(&mut ospf, etherparse::IpNumber(89), b"hello")
        .unwrap();
    assert_eq!(
        process(&mut w, &snap, &ospf, 0).0,
        Verdict::ToHost { port: 0 }
    );
}

#[test]
fn echo_replies_for_the_hosts_probes_go_to_the_host() {
    let (mut w, snap) = setup();
    let mut request = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC[0])
        .ipv4(CLIENT, HOST0, 64)
        .icmpv4_echo_request(7, 1)
        .write(&mut request, b"ping")
        .unwrap();
    // Pings to an interface address are answered by the dataplane itself (as fast as the
    // forwarding, whatever the kernel is doing)...
    assert_eq!(
        process(&mut w, &snap, &request, 0).0,
        Verdict::Reply { port: 0 }
    );
    // ...but the echo replies the host's own pings (ICMP health checks) get are the kernel's.
    let mut reply = Vec::new();
    PacketBuilder::ethernet2(BACKEND_MAC, LB_MAC[1])
        .ipv4(BACKEND, HOST1, 64)
        .icmpv4_echo_reply(7, 1)
        .write(&mut reply, b"sluiced-health")
        .unwrap();
    assert_eq!(
        process(&mut w, &snap, &reply, 1).0,
        Verdict::ToHost { port: 1 }
    );
    // Pings to a VIP are still answered by the dataplane itself.
    let mut vip = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, LB_MAC[0])
        .ipv4(CLIENT, VIP, 64)
        .icmpv4_echo_request(7, 2)
        .write(&mut vip, b"ping")
        .unwrap();
    assert_eq!(
        process(&mut w, &snap, &vip, 0).0,
        Verdict::Reply { port: 0 }
    );
}

fn arp(op: u16, sender: [u8; 4], sender_mac: [u8; 6], target: [u8; 4], dst: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sender_mac);
    f.extend_from_slice(&sender);
    f.extend_from_slice(&if op == 1 { [0; 6] } else { dst });
    f.extend_from_slice(&target);
    f.resize(60, 0);
    f
}

#[test]
fn arp_replies_to_the_host_address_reach_the_kernel_and_requests_are_answered() {
    let (mut w, snap) = setup();
    // The kernel asked for the backend's MAC through the tap; the reply must reach it.
    let reply = arp(2, BACKEND, BACKEND_MAC, HOST1, LB_MAC[1]);
    let (verdict, out) = process(&mut w, &snap, &reply, 1);
    assert_eq!(verdict, Verdict::ToHost { port: 1 });
    assert_eq!(out, reply);
    // A reply for the other port's address arriving here is not this tap's business.
    let stray = arp(2, BACKEND, BACKEND_MAC, HOST0, LB_MAC[1]);
    assert!(!matches!(
        process(&mut w, &snap, &stray, 1).0,
        Verdict::ToHost { .. }
    ));
    // Requests for the host address: the dataplane answers with the port's MAC.
    let request = arp(1, CLIENT, CLIENT_MAC, HOST0, [0xff; 6]);
    let (verdict, out) = process(&mut w, &snap, &request, 0);
    assert_eq!(verdict, Verdict::Reply { port: 0 });
    assert_eq!(&out[22..28], &LB_MAC[0], "sender MAC of the answer");
}

#[test]
fn load_balanced_traffic_and_unknown_destinations_do_not_go_to_the_host() {
    let (mut w, snap) = setup();
    // DNAT to the VIP: forwarded to the backend.
    let syn = tcp(CLIENT, VIP, 40001, 80, true, 0);
    assert_eq!(
        process(&mut w, &snap, &syn, 0).0,
        Verdict::Forward { port: 1 }
    );
    // Not ours at all: dropped as before.
    let stray = tcp(CLIENT, [198, 18, 0, 77], 40002, 22, true, 0);
    assert_eq!(
        process(&mut w, &snap, &stray, 0).0,
        Verdict::Drop(DropReason::NoConnection)
    );
}

#[test]
fn full_nat_replies_to_an_interface_address_used_for_snat_still_hit_their_connection() {
    let (mut w, snap) = setup();
    let syn = tcp(CLIENT, VIP, 40003, 81, true, 0);
    let (verdict, out) = process(&mut w, &snap, &syn, 0);
    assert_eq!(verdict, Verdict::Forward { port: 1 });
    // The translated SYN: from HOST1 (the SNAT address) and some port, to the backend.
    let sport = u16::from_be_bytes([out[34], out[35]]);
    assert_eq!(&out[26..30], &HOST1);
    let synack = {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(BACKEND_MAC, LB_MAC[1])
            .ipv4(BACKEND, HOST1, 64)
            .tcp(8080, sport, 5000, 64240)
            .syn()
            .ack(1001)
            .write(&mut f, &[])
            .unwrap();
        f
    };
    assert_eq!(
        process(&mut w, &snap, &synack, 1).0,
        Verdict::Forward { port: 0 }
    );
    // The same address on a port no connection uses: the host's (e.g. SSH to it).
    let ssh = tcp(BACKEND, HOST1, 50000, 22, true, 1);
    assert_eq!(
        process(&mut w, &snap, &ssh, 1).0,
        Verdict::ToHost { port: 1 }
    );
}
