//! Tests of the summary parser, cross-checked against etherparse.

use super::*;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use proptest::prelude::*;

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const CLIENT4: [u8; 4] = [198, 18, 0, 1];
const VIP4: [u8; 4] = [198, 18, 100, 10];
const CLIENT6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const VIP6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x0a,
];

/// W1's SYN as scapy writes it: 198.18.0.1:40000 -> 198.18.100.10:80, 54 bytes.
const W1_SYN: [u8; 54] = [
    0x02, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x08, 0x00, // eth
    0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0x40, 0x06, 0x00, 0x00, 198, 18, 0, 1, 198, 18,
    100, 10, // ipv4 (checksum left zero)
    0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0x20, 0x00,
    0x00, 0x00, 0x00, 0x00, // tcp (checksum left zero)
];

fn build(builder: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut frame = Vec::new();
    builder(&mut frame);
    frame
}

fn v4_tcp(payload: &[u8]) -> Vec<u8> {
    build(|out| {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(CLIENT4, VIP4, 64)
            .tcp(40000, 80, 1, 64240)
            .syn()
            .write(out, payload)
            .unwrap()
    })
}

#[test]
fn parses_the_w1_syn() {
    let info = parse(&W1_SYN).unwrap();
    assert_eq!(info.ether_kind, EtherKind::Ipv4);
    assert_eq!(info.ethertype, 0x0800);
    assert_eq!(info.vlan, None);
    assert_eq!(info.l3_offset, 14);
    assert_eq!(info.ip_version, 4);
    assert_eq!(info.ttl, 64);
    assert_eq!(info.src, Addr::from_v4(CLIENT4));
    assert_eq!(info.dst, Addr::from_v4(VIP4));
    assert_eq!(info.l4_proto, 6);
    assert_eq!(info.l4_offset, 34);
    assert_eq!(info.l4_len, 20);
    assert_eq!(info.fragment, None);
    assert!(info.tcp_flags.is_initial_syn());
    assert_eq!((info.src_port, info.dst_port), (40000, 80));
    assert_eq!(info.icmp_embedded_offset, None);
    let key = info.flow_key().unwrap();
    assert_eq!(key.proto, Proto::Tcp);
    assert_eq!((key.src_port, key.dst_port), (40000, 80));
    // Checksums were left zero: parse does not care, the verifiers do.
    assert!(!verify_ipv4_header_checksum(&W1_SYN, &info));
    assert!(!verify_l4_checksum(&W1_SYN, &info));
}

/// Our summary of `frame` agrees with etherparse's slicing of it.
fn assert_agrees_with_etherparse(frame: &[u8]) {
    let ours = parse(frame).unwrap();
    let theirs = SlicedPacket::from_ethernet(frame).unwrap();
    match theirs.net {
        Some(NetSlice::Ipv4(ip)) => {
            let header = ip.header();
            assert_eq!(ours.ip_version, 4);
            assert_eq!(ours.src, Addr::from_v4(header.source()));
            assert_eq!(ours.dst, Addr::from_v4(header.destination()));
            assert_eq!(ours.ttl, header.ttl());
            assert_eq!(ours.l4_proto, header.protocol().0);
            assert_eq!(usize::from(ours.l4_len), ip.payload().payload.len());
        }
        Some(NetSlice::Ipv6(ip)) => {
            let header = ip.header();
            assert_eq!(ours.ip_version, 6);
            assert_eq!(ours.src, Addr::from_v6(header.source()));
            assert_eq!(ours.dst, Addr::from_v6(header.destination()));
            assert_eq!(ours.ttl, header.hop_limit());
            assert_eq!(ours.l4_proto, ip.payload().ip_number.0);
            assert_eq!(usize::from(ours.l4_len), ip.payload().payload.len());
        }
        other => panic!("unexpected net {other:?}"),
    }
    let l4 = &frame[ours.l4_range()];
    match theirs.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            assert_eq!(ours.src_port, tcp.source_port());
            assert_eq!(ours.dst_port, tcp.destination_port());
            assert_eq!(ours.tcp_flags.syn(), tcp.syn());
            assert_eq!(ours.tcp_flags.ack(), tcp.ack());
            assert_eq!(ours.tcp_flags.fin(), tcp.fin());
            assert_eq!(ours.tcp_flags.rst(), tcp.rst());
            assert_eq!(ours.tcp_flags.psh(), tcp.psh());
            assert_eq!(ours.tcp_flags.urg(), tcp.urg());
            assert_eq!(l4, tcp.slice());
        }
        Some(TransportSlice::Udp(udp)) => {
            assert_eq!(ours.src_port, udp.source_port());
            assert_eq!(ours.dst_port, udp.destination_port());
            assert_eq!(l4, udp.slice());
        }
        Some(TransportSlice::Icmpv4(icmp)) => {
            assert_eq!(
                (ours.icmp_type, ours.icmp_code),
                (icmp.type_u8(), icmp.code_u8())
            );
            assert_eq!(l4, icmp.slice());
        }
        Some(TransportSlice::Icmpv6(icmp)) => {
            assert_eq!(
                (ours.icmp_type, ours.icmp_code),
                (icmp.type_u8(), icmp.code_u8())
            );
            assert_eq!(l4, icmp.slice());
        }
        None => {}
    }
    // etherparse's builder fills every checksum.
    assert!(verify_ipv4_header_checksum(frame, &ours));
    assert!(verify_l4_checksum(frame, &ours));
}

#[test]
fn agrees_with_etherparse_on_built_packets() {
    let payload = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    let frames = [
        v4_tcp(payload),
        build(|out| {
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .single_vlan(100.try_into().unwrap())
                .ipv4(CLIENT4, VIP4, 3)
                .udp(5353, 53)
                .write(out, payload)
                .unwrap()
        }),
        build(|out| {
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .double_vlan(10.try_into().unwrap(), 20.try_into().unwrap())
                .ipv6(CLIENT6, VIP6, 255)
                .tcp(1, 443, 0xffff_ffff, 0)
                .ack(7)
                .fin()
                .psh()
                .write(out, payload)
                .unwrap()
        }),
        build(|out| {
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv6(CLIENT6, VIP6, 1)
                .udp(40000, 4789)
                .write(out, &[])
                .unwrap()
        }),
        build(|out| {
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv4(CLIENT4, VIP4, 64)
                .icmpv4_echo_request(0x1c2d, 1)
                .write(out, payload)
                .unwrap()
        }),
        build(|out| {
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv6(CLIENT6, VIP6, 64)
                .icmpv6_echo_reply(9, 2)
                .write(out, payload)
                .unwrap()
        }),
    ];
    for frame in &frames {
        assert_agrees_with_etherparse(frame);
    }
    assert_eq!(parse(&frames[1]).unwrap().vlan, Some(100));
    assert_eq!(parse(&frames[2]).unwrap().vlan, Some(10));
    assert_eq!(parse(&frames[2]).unwrap().l3_offset, 22);
    let echo = parse(&frames[4]).unwrap();
    assert!(echo.is_icmp_echo());
    let key = echo.flow_key().unwrap();
    assert_eq!(
        (key.proto, key.src_port, key.dst_port),
        (Proto::Icmp, 0x1c2d, 0x1c2d)
    );
    let key6 = parse(&frames[5]).unwrap().flow_key().unwrap();
    assert_eq!((key6.proto, key6.src_port), (Proto::Icmpv6, 9));
}

#[test]
fn ethernet_padding_is_not_l4_data() {
    // A 60-byte minimum frame carrying a 28-byte UDP/IPv4 packet.
    let mut frame = build(|out| {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(CLIENT4, VIP4, 64)
            .udp(1000, 2000)
            .write(out, &[])
            .unwrap()
    });
    frame.resize(60, 0);
    let info = parse(&frame).unwrap();
    assert_eq!(info.l4_len, 8);
    assert_eq!(info.l4_range(), 34..42);
    assert!(verify_l4_checksum(&frame, &info));
}

#[test]
fn arp_and_other_ethertypes() {
    let mut frame = [0u8; 42];
    frame[12..14].copy_from_slice(&[0x08, 0x06]);
    frame[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    let info = parse(&frame).unwrap();
    assert_eq!(
        (info.ether_kind, info.l3_offset, info.ip_version),
        (EtherKind::Arp, 14, 0)
    );
    assert_eq!(info.flow_key(), None);
    assert_eq!(parse(&frame[..41]), Err(ParseError::Truncated));
    frame[15] = 6;
    assert_eq!(parse(&frame), Err(ParseError::UnsupportedArp));

    let mut lldp = [0u8; 60];
    lldp[12..14].copy_from_slice(&[0x88, 0xcc]);
    let info = parse(&lldp).unwrap();
    assert_eq!(
        (info.ether_kind, info.ethertype),
        (EtherKind::Other, 0x88cc)
    );
    assert!(!info.is_ip());
}

#[test]
fn every_drop_reason() {
    let good = v4_tcp(&[]);
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut frame = good.clone();
        edit(&mut frame);
        parse(&frame)
    };
    assert_eq!(with(&|f| f.truncate(13)), Err(ParseError::Truncated));
    assert_eq!(with(&|f| f.truncate(33)), Err(ParseError::Truncated));
    assert_eq!(with(&|f| f.truncate(53)), Err(ParseError::Truncated));
    assert_eq!(with(&|f| f[14] = 0x65), Err(ParseError::BadIpVersion));
    assert_eq!(with(&|f| f[14] = 0x44), Err(ParseError::BadIhl));
    assert_eq!(with(&|f| f[17] = 19), Err(ParseError::BadTotalLength));
    assert_eq!(with(&|f| f[17] = 41), Err(ParseError::Truncated));
    assert_eq!(with(&|f| f[46] = 0x40), Err(ParseError::BadTcpHeaderLength));
    assert_eq!(with(&|f| f[46] = 0x60), Err(ParseError::BadTcpHeaderLength));
    // VLAN tag announced but cut off.
    assert_eq!(
        parse(&[0x81, 0x00][..].repeat(8)[..16]),
        Err(ParseError::Truncated)
    );

    let udp = build(|out| {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(CLIENT4, VIP4, 64)
            .udp(1, 2)
            .write(out, &[0; 4])
            .unwrap()
    });
    let mut bad = udp.clone();
    bad[39] = 13; // UDP length beyond the IP payload
    assert_eq!(parse(&bad), Err(ParseError::BadL4Length));
    bad[39] = 7;
    assert_eq!(parse(&bad), Err(ParseError::BadL4Length));

    let mut v6 = build(|out| {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6(CLIENT6, VIP6, 64)
            .udp(1, 2)
            .write(out, &[])
            .unwrap()
    });
    v6[14] = 0x40;
    assert_eq!(parse(&v6), Err(ParseError::BadIpVersion));
    // Nine Destination Options headers.
    let mut chain = Vec::new();
    for _ in 0..9 {
        chain.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
    }
    let mut frame = v6[..54].to_vec();
    frame[14] = 0x60;
    frame[18..20].copy_from_slice(&(chain.len() as u16).to_be_bytes());
    frame[20] = 60;
    frame.extend_from_slice(&chain);
    assert_eq!(parse(&frame), Err(ParseError::TooManyExtHeaders));

    // IPv4-mapped source or destination: never on the wire, and the key of an IPv4 flow.
    v6[14] = 0x60;
    assert!(parse(&v6).is_ok());
    let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1];
    for at in [22, 38] {
        let mut bad = v6.clone();
        bad[at..at + 16].copy_from_slice(&mapped);
        assert_eq!(parse(&bad), Err(ParseError::V4MappedAddress));
    }
}

#[test]
fn error_names_are_unique_and_indexed() {
    for (index, error) in ParseError::ALL.iter().enumerate() {
        assert_eq!(error.index(), index);
        assert_eq!(error.to_string(), error.as_str());
    }
    let mut names: Vec<_> = ParseError::ALL.iter().map(|e| e.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ParseError::COUNT);
}

#[test]
fn ipv4_fragments() {
    let whole = build(|out| {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(CLIENT4, VIP4, 64)
            .udp(5000, 53)
            .write(out, &[0xab; 64])
            .unwrap()
    });
    // First fragment: MF set, 40 bytes of the 72-byte datagram.
    let mut first = whole[..14 + 20 + 40].to_vec();
    first[16..18].copy_from_slice(&60u16.to_be_bytes());
    first[20..22].copy_from_slice(&0x2000u16.to_be_bytes());
    let info = parse(&first).unwrap();
    assert!(info.is_fragment() && info.is_first_fragment());
    let fragment = info.fragment.unwrap();
    assert!(fragment.more);
    assert_eq!(fragment.offset, 0);
    assert_eq!((info.src_port, info.dst_port, info.l4_len), (5000, 53, 40));
    assert!(info.flow_key().is_some());
    assert!(verify_l4_checksum(&first, &info));

    // Last fragment at offset 40: no L4 header.
    let mut last = whole[..34].to_vec();
    last.extend_from_slice(&[0xab; 32]);
    last[16..18].copy_from_slice(&52u16.to_be_bytes());
    last[20..22].copy_from_slice(&5u16.to_be_bytes());
    let info = parse(&last).unwrap();
    assert!(info.is_fragment() && !info.is_first_fragment() && !info.has_l4_header());
    assert_eq!(info.fragment.unwrap().offset, 40);
    assert_eq!((info.src_port, info.dst_port), (0, 0));
    assert_eq!(info.flow_key(), None);
}

#[test]
fn ipv6_extension_headers_and_fragments() {
    // Hop-by-Hop -> Fragment (first, M set) -> TCP, built by etherparse.
    let ip = etherparse::Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: 0,
        next_header: etherparse::IpNumber::IPV6_HEADER_HOP_BY_HOP,
        hop_limit: 9,
        source: CLIENT6,
        destination: VIP6,
    };
    let tcp = etherparse::TcpHeader::new(40000, 80, 5, 100);
    let mut l4 = tcp.to_bytes().to_vec();
    l4.extend_from_slice(&[0; 12]);
    let mut frame = etherparse::Ethernet2Header {
        source: MAC_A,
        destination: MAC_B,
        ether_type: etherparse::EtherType::IPV6,
    }
    .to_bytes()
    .to_vec();
    let mut rest = vec![44, 0, 1, 4, 0, 0, 0, 0];
    // Fragment header written by hand: etherparse 0.16 shifts the offset and M bits wrongly.
    rest.extend_from_slice(&[6, 0, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04]);
    rest.extend_from_slice(&l4);
    let mut header = ip.to_bytes().to_vec();
    header[4..6].copy_from_slice(&(rest.len() as u16).to_be_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(&rest);
    let info = parse(&frame).unwrap();
    assert_eq!(info.l4_proto, 6);
    assert_eq!(info.l4_offset, 14 + 40 + 16);
    assert_eq!(usize::from(info.l4_len), l4.len());
    assert_eq!(
        info.fragment,
        Some(Fragment {
            offset: 0,
            more: true,
            id: 0x0102_0304
        })
    );
    assert_eq!((info.src_port, info.dst_port, info.ttl), (40000, 80, 9));

    // The same chain as an atomic fragment (no M, offset 0) is a whole packet.
    frame[14 + 40 + 8 + 3] = 0;
    let info = parse(&frame).unwrap();
    assert_eq!(info.fragment, None);
    assert!(info.flow_key().is_some());
}

#[test]
fn icmp_errors_expose_the_quoted_packet() {
    // The VIP's reply to the client hit a closed port on the way back: a router tells the VIP.
    let original = build(|out| {
        PacketBuilder::ipv4(VIP4, CLIENT4, 64)
            .udp(53, 40000)
            .write(out, &[0x11; 20])
            .unwrap()
    });
    let quote = &original[..28]; // IP header + 8 bytes of UDP: the RFC 792 minimum
    let mut frame = build(|out| {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .single_vlan(7.try_into().unwrap())
            .ipv4(CLIENT4, VIP4, 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ))
            .write(out, quote)
            .unwrap()
    });
    frame.resize(frame.len() + 6, 0); // Ethernet padding after the ICMP message
    let outer = parse(&frame).unwrap();
    assert_eq!((outer.icmp_type, outer.icmp_code), (3, 3));
    assert_eq!(outer.icmp_embedded_offset, Some(18 + 20 + 8));
    assert_eq!(outer.flow_key(), None);
    assert!(verify_l4_checksum(&frame, &outer));

    let inner = parse_embedded(&frame, &outer).unwrap();
    assert_eq!(inner.l3_offset, 46);
    assert_eq!(inner.l4_offset, 66);
    assert_eq!(inner.l4_len, 28); // as claimed, though only 8 bytes were quoted
    let key = inner.flow_key().unwrap();
    assert_eq!(key.src, Addr::from_v4(VIP4));
    assert_eq!(key.dst, Addr::from_v4(CLIENT4));
    assert_eq!(
        (key.src_port, key.dst_port, key.proto),
        (53, 40000, Proto::Udp)
    );

    // A quote cut inside the L4 header is truncated; a quote of a TCP header gives the ports.
    let short = &frame[..frame.len() - 6 - 4];
    let outer_short = PacketInfo {
        l4_len: outer.l4_len - 4,
        ..outer
    };
    assert_eq!(
        parse_embedded(short, &outer_short),
        Err(ParseError::Truncated)
    );
    assert_eq!(
        parse_embedded(&frame, &parse(&W1_SYN).unwrap()),
        Err(ParseError::Truncated)
    );

    let tcp = build(|out| {
        PacketBuilder::ipv6(VIP6, CLIENT6, 64)
            .tcp(443, 50000, 1, 1)
            .ack(1)
            .write(out, &[0; 100])
            .unwrap()
    });
    let frame6 = build(|out| {
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6(CLIENT6, VIP6, 64)
            .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 })
            .write(out, &tcp[..60])
            .unwrap()
    });
    let outer6 = parse(&frame6).unwrap();
    assert_eq!(outer6.icmp_embedded_offset, Some(14 + 40 + 8));
    assert!(verify_l4_checksum(&frame6, &outer6));
    let inner6 = parse_embedded(&frame6, &outer6).unwrap();
    let key6 = inner6.flow_key().unwrap();
    assert_eq!(
        (key6.src_port, key6.dst_port, key6.proto),
        (443, 50000, Proto::Tcp)
    );
    assert!(inner6.tcp_flags.ack());
}

#[test]
fn verifiers_catch_corruption() {
    let mut frame = v4_tcp(b"payload");
    let info = parse(&frame).unwrap();
    assert!(verify_ipv4_header_checksum(&frame, &info));
    assert!(verify_l4_checksum(&frame, &info));
    frame[22] ^= 0x01; // the TTL: IPv4 header only
    assert!(!verify_ipv4_header_checksum(&frame, &info));
    assert!(verify_l4_checksum(&frame, &info));
    frame[22] ^= 0x01;
    let last = frame.len() - 1;
    frame[last] ^= 0x80;
    assert!(verify_ipv4_header_checksum(&frame, &info));
    assert!(!verify_l4_checksum(&frame, &info));
}

/// The NAT rewrite the workers do: source address and port, incrementally.
fn rewrite_source_incrementally(frame: &mut [u8], info: &PacketInfo, addr: Addr, port: u16) {
    let l4_update = |csum: u16| -> u16 {
        let csum = if info.ip_version == 4 {
            checksum::update_addr4(csum, &info.src.v4_octets(), &addr.v4_octets())
        } else {
            checksum::update_addr16(csum, &info.src.0, &addr.0)
        };
        checksum::update_u16(csum, info.src_port, port)
    };
    let l4_bytes = &mut frame[info.l4_range()];
    match info.l4_proto {
        6 => {
            let mut tcp = tcp::TcpPacket::new_checked(l4_bytes).unwrap();
            let csum = l4_update(tcp.checksum());
            tcp.set_checksum(csum);
            tcp.set_src_port(port);
        }
        17 => {
            let mut udp = udp::UdpPacket::new_checked(l4_bytes).unwrap();
            udp.update_checksum(l4_update);
            udp.set_src_port(port);
        }
        _ => unreachable!(),
    }
    let l3_bytes = &mut frame[usize::from(info.l3_offset)..];
    if info.ip_version == 4 {
        ipv4::Ipv4Packet::new_checked(l3_bytes)
            .unwrap()
            .rewrite_src_addr(addr.v4_octets());
    } else {
        ipv6::Ipv6Packet::new_checked(l3_bytes)
            .unwrap()
            .set_src_addr(addr.0);
    }
}

/// The same rewrite followed by full recomputation.
fn rewrite_source_fully(frame: &mut [u8], info: &PacketInfo, addr: Addr, port: u16) {
    let new_info = PacketInfo { src: addr, ..*info };
    let pseudo = new_info.pseudo_header_sum();
    let l4_bytes = &mut frame[info.l4_range()];
    match info.l4_proto {
        6 => {
            let mut tcp = tcp::TcpPacket::new_checked(l4_bytes).unwrap();
            tcp.set_src_port(port);
            tcp.fill_checksum(pseudo);
        }
        17 => {
            let mut udp = udp::UdpPacket::new_checked(l4_bytes).unwrap();
            udp.set_src_port(port);
            udp.fill_checksum(pseudo);
        }
        _ => unreachable!(),
    }
    let l3_bytes = &mut frame[usize::from(info.l3_offset)..];
    if info.ip_version == 4 {
        let mut ip = ipv4::Ipv4Packet::new_checked(l3_bytes).unwrap();
        ip.set_src_addr(addr.v4_octets());
        ip.fill_checksum();
    } else {
        ipv6::Ipv6Packet::new_checked(l3_bytes)
            .unwrap()
            .set_src_addr(addr.0);
    }
}

fn arbitrary_packet() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<(u16, u16)>(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(v6, tcp, src, dst, (sport, dport), payload)| {
            let builder = PacketBuilder::ethernet2(MAC_A, MAC_B);
            let ip = if v6 {
                builder.ipv6(src, dst, 64)
            } else {
                let v4 = |a: [u8; 16]| [a[0], a[1], a[2], a[3]];
                builder.ipv4(v4(src), v4(dst), 64)
            };
            build(|out| {
                if tcp {
                    ip.tcp(sport, dport, 7, 1000)
                        .ack(9)
                        .write(out, &payload)
                        .unwrap()
                } else {
                    ip.udp(sport, dport).write(out, &payload).unwrap()
                }
            })
        })
}

proptest! {
    #[test]
    fn incremental_rewrite_equals_full_recompute(
        frame in arbitrary_packet(),
        new_addr in any::<[u8; 16]>(),
        new_port in any::<u16>(),
    ) {
        let info = parse(&frame).unwrap();
        let addr = if info.ip_version == 4 {
            Addr::from_v4([new_addr[0], new_addr[1], new_addr[2], new_addr[3]])
        } else {
            Addr::from_v6(new_addr)
        };
        let mut incremental = frame.clone();
        rewrite_source_incrementally(&mut incremental, &info, addr, new_port);
        let mut full = frame.clone();
        rewrite_source_fully(&mut full, &info, addr, new_port);
        prop_assert_eq!(&incremental, &full);
        let rewritten = parse(&incremental).unwrap();
        prop_assert_eq!(rewritten.src, addr);
        prop_assert_eq!(rewritten.src_port, new_port);
        prop_assert!(verify_ipv4_header_checksum(&incremental, &rewritten));
        prop_assert!(verify_l4_checksum(&incremental, &rewritten));
    }

    #[test]
    fn built_packets_agree_with_etherparse(frame in arbitrary_packet()) {
        assert_agrees_with_etherparse(&frame);
    }
}
