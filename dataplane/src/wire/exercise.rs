//! Drives every parser, view, accessor and mutator over arbitrary bytes, for the no-panic
//! property tests (`tests/wire_props.rs`) and the fuzz target (`fuzz/fuzz_targets/parse.rs`),
//! and checks that [`parse`] and the views agree on what they accept. Not for production use.

use core::hint::black_box;

use super::arp::ArpPacket;
use super::ethernet::{EthernetFrame, MacAddr};
use super::icmp::{Icmpv4Packet, Icmpv6Packet};
use super::ipv4::Ipv4Packet;
use super::ipv6::{walk_ext_headers, Ipv6Packet};
use super::tcp::{TcpFlags, TcpPacket};
use super::udp::UdpPacket;
use super::{checksum, parse, parse_embedded, verify_ipv4_header_checksum, verify_l4_checksum};

/// Largest input mutated on the stack; longer inputs are mutated in their first part only.
const SCRATCH_LEN: usize = 2048;

/// Runs everything over `data` (as a frame and, at a few offsets, as each header). Panics only
/// if a consistency check between [`parse`] and the views fails, which is a bug.
pub fn exercise(data: &[u8]) {
    exercise_frame(data);
    for offset in [0usize, 14, 18, 22, 34, 54] {
        if let Some(bytes) = data.get(offset..) {
            exercise_views(bytes);
        }
    }
}

fn exercise_frame(frame: &[u8]) {
    let Ok(info) = parse(frame) else {
        return;
    };
    black_box((
        info.flow_key(),
        info.pseudo_header_sum(),
        info.is_icmp_echo(),
    ));
    black_box(verify_ipv4_header_checksum(frame, &info));
    black_box(verify_l4_checksum(frame, &info));
    if let Ok(inner) = parse_embedded(frame, &info) {
        black_box(inner.flow_key());
    }

    // What parse accepted, the views accept too.
    let l3 = frame.get(usize::from(info.l3_offset)..).unwrap_or(&[]);
    let l4 = frame.get(info.l4_range());
    match info.ip_version {
        4 => assert!(Ipv4Packet::new_checked(l3).is_ok(), "ipv4 view disagrees"),
        6 => {
            let ip = Ipv6Packet::new_checked(l3).expect("ipv6 view disagrees");
            let upper = ip.upper_layer().expect("ipv6 walk disagrees");
            assert_eq!(upper.protocol, info.l4_proto);
        }
        _ => {}
    }
    if info.is_ip() && !info.is_fragment() {
        let l4 = l4.expect("l4 range outside the frame");
        match info.l4_proto {
            6 => assert!(TcpPacket::new_checked(l4).is_ok(), "tcp view disagrees"),
            17 => assert!(UdpPacket::new_checked(l4).is_ok(), "udp view disagrees"),
            _ => {}
        }
    }
}

fn exercise_views(bytes: &[u8]) {
    let mut scratch = [0u8; SCRATCH_LEN];
    let len = bytes.len().min(SCRATCH_LEN);
    let scratch = &mut scratch[..len];
    scratch.copy_from_slice(&bytes[..len]);

    black_box(checksum::internet_checksum(bytes));
    black_box(walk_ext_headers(bytes, 0, 0, bytes.len()).ok());

    read_ethernet(EthernetFrame::new_unchecked(bytes));
    if let Ok(frame) = EthernetFrame::new_checked(bytes) {
        read_ethernet(frame);
    }
    let mut frame = EthernetFrame::new_unchecked(&mut *scratch);
    frame.set_vlan_id(42);
    frame.set_ethertype(0x0800);
    frame.swap_addrs();
    frame.set_src_addr(MacAddr::BROADCAST);
    black_box(frame.payload_mut().len());

    read_arp(ArpPacket::new_unchecked(bytes));
    if let Ok(arp) = ArpPacket::new_checked(bytes) {
        read_arp(arp);
    }
    let mut arp = ArpPacket::new_unchecked(&mut *scratch);
    arp.make_reply(MacAddr([2, 0, 0, 0, 0, 1]));
    arp.set_ethernet_ipv4_format();
    black_box(super::arp::reply_in_place(scratch, 14, MacAddr::ZERO).is_ok());

    read_ipv4(Ipv4Packet::new_unchecked(bytes));
    if let Ok(ip) = Ipv4Packet::new_checked(bytes) {
        read_ipv4(ip);
    }
    let mut ip = Ipv4Packet::new_unchecked(&mut *scratch);
    ip.decrement_ttl();
    ip.rewrite_src_addr([198, 18, 0, 1]);
    ip.rewrite_dst_addr([198, 18, 0, 2]);
    ip.fill_checksum();
    ip.set_fragment(true, true, 0xffff);
    black_box(ip.payload_mut().len());
    ip.set_version_and_header_len(usize::MAX);

    read_ipv6(Ipv6Packet::new_unchecked(bytes));
    if let Ok(ip) = Ipv6Packet::new_checked(bytes) {
        read_ipv6(ip);
    }
    let mut ip = Ipv6Packet::new_unchecked(&mut *scratch);
    ip.decrement_hop_limit();
    ip.set_src_addr([0xff; 16]);
    ip.set_version_tc_flow(0xff, u32::MAX);
    black_box(ip.payload_mut().len());

    read_tcp(TcpPacket::new_unchecked(bytes));
    if let Ok(tcp) = TcpPacket::new_checked(bytes) {
        read_tcp(tcp);
    }
    let mut tcp = TcpPacket::new_unchecked(&mut *scratch);
    tcp.rewrite_src_port(1);
    tcp.rewrite_dst_port(2);
    tcp.set_flags(TcpFlags(0xff));
    tcp.fill_checksum(u64::MAX);
    black_box(tcp.payload_mut().len());
    tcp.set_header_len(usize::MAX);

    read_udp(UdpPacket::new_unchecked(bytes));
    if let Ok(udp) = UdpPacket::new_checked(bytes) {
        read_udp(udp);
    }
    let mut udp = UdpPacket::new_unchecked(&mut *scratch);
    udp.rewrite_src_port(1);
    udp.rewrite_dst_port(2);
    udp.fill_checksum(u64::MAX);
    black_box(udp.payload_mut().len());

    read_icmpv4(Icmpv4Packet::new_unchecked(bytes));
    if let Ok(icmp) = Icmpv4Packet::new_checked(bytes) {
        read_icmpv4(icmp);
    }
    let mut icmp = Icmpv4Packet::new_unchecked(&mut *scratch);
    icmp.rewrite_echo_ident(7);
    icmp.fill_checksum();
    black_box(icmp.embedded_mut().len());

    read_icmpv6(Icmpv6Packet::new_unchecked(bytes));
    if let Ok(icmp) = Icmpv6Packet::new_checked(bytes) {
        read_icmpv6(icmp);
    }
    let mut icmp = Icmpv6Packet::new_unchecked(&mut *scratch);
    icmp.rewrite_echo_ident(7);
    icmp.fill_checksum(1);
    black_box(icmp.embedded_mut().len());
}

fn read_ethernet(frame: EthernetFrame<&[u8]>) {
    black_box((frame.dst_addr(), frame.src_addr(), frame.ethertype()));
    black_box((frame.vlan_id(), frame.inner_vlan_id(), frame.vlan_pcp()));
    black_box((frame.header_len(), frame.payload().len()));
}

fn read_arp(arp: ArpPacket<&[u8]>) {
    black_box((arp.hardware_type(), arp.protocol_type(), arp.operation()));
    black_box((arp.hardware_len(), arp.protocol_len(), arp.is_gratuitous()));
    black_box((arp.sender_hardware_addr(), arp.sender_protocol_addr()));
    black_box((arp.target_hardware_addr(), arp.target_protocol_addr()));
    black_box(arp.check_format().is_ok());
}

fn read_ipv4(ip: Ipv4Packet<&[u8]>) {
    black_box((
        ip.version(),
        ip.header_len(),
        ip.dscp_ecn(),
        ip.total_len(),
        ip.ident(),
    ));
    black_box((
        ip.dont_frag(),
        ip.more_frags(),
        ip.frag_offset(),
        ip.is_fragment(),
    ));
    black_box((ip.ttl(), ip.protocol(), ip.header_checksum()));
    black_box((
        ip.src_addr(),
        ip.dst_addr(),
        ip.options().len(),
        ip.payload().len(),
    ));
    black_box((
        ip.verify_checksum(),
        ip.pseudo_header_sum(),
        ip.header().len(),
    ));
}

fn read_ipv6(ip: Ipv6Packet<&[u8]>) {
    black_box((
        ip.version(),
        ip.traffic_class(),
        ip.flow_label(),
        ip.payload_len(),
    ));
    black_box((
        ip.next_header(),
        ip.hop_limit(),
        ip.src_addr(),
        ip.dst_addr(),
    ));
    black_box((
        ip.payload().len(),
        ip.upper_layer().ok(),
        ip.pseudo_header_sum(6, 20),
    ));
}

fn read_tcp(tcp: TcpPacket<&[u8]>) {
    black_box((
        tcp.src_port(),
        tcp.dst_port(),
        tcp.seq_number(),
        tcp.ack_number(),
    ));
    black_box((
        tcp.header_len(),
        tcp.flags(),
        tcp.window_len(),
        tcp.checksum(),
    ));
    black_box((tcp.urgent_at(), tcp.options().len(), tcp.payload().len()));
    black_box(tcp.verify_checksum(u64::MAX));
}

fn read_udp(udp: UdpPacket<&[u8]>) {
    black_box((udp.src_port(), udp.dst_port(), udp.len(), udp.is_empty()));
    black_box((udp.checksum(), udp.payload().len(), udp.datagram().len()));
    black_box(udp.verify_checksum(0));
}

fn read_icmpv4(icmp: Icmpv4Packet<&[u8]>) {
    black_box((
        icmp.msg_type(),
        icmp.msg_code(),
        icmp.checksum(),
        icmp.rest_of_header(),
    ));
    black_box((
        icmp.echo_ident(),
        icmp.echo_seq_no(),
        icmp.is_echo(),
        icmp.is_error(),
    ));
    black_box((
        icmp.embedded().len(),
        icmp.payload().len(),
        icmp.verify_checksum(),
    ));
}

fn read_icmpv6(icmp: Icmpv6Packet<&[u8]>) {
    black_box((
        icmp.msg_type(),
        icmp.msg_code(),
        icmp.checksum(),
        icmp.rest_of_header(),
    ));
    black_box((
        icmp.echo_ident(),
        icmp.echo_seq_no(),
        icmp.is_echo(),
        icmp.is_error(),
    ));
    black_box((
        icmp.embedded().len(),
        icmp.payload().len(),
        icmp.verify_checksum(0),
    ));
}
