//! No input makes the wire parsers panic: arbitrary bytes, and valid packets mutated, truncated
//! or extended, go through `parse`, `parse_embedded`, the verifiers and every view's
//! constructors, accessors and mutators (`dataplane::wire::exercise`), which also checks that
//! `parse` and the views accept the same packets.

use dataplane::wire::{self, exercise::exercise};
use etherparse::PacketBuilder;
use proptest::prelude::*;

/// A valid frame of one of the shapes the dataplane sees.
fn valid_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..10,
        0u8..3,
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<(u16, u16)>(),
        proptest::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(|(shape, tags, src, dst, (sport, dport), payload)| {
            let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
            let (src4, dst4) = (
                [src[0], src[1], src[2], src[3]],
                [dst[0], dst[1], dst[2], dst[3]],
            );
            let ip = match (tags, shape % 2) {
                (0, 0) => eth.ipv4(src4, dst4, 64),
                (0, _) => eth.ipv6(src, dst, 64),
                (1, 0) => eth
                    .single_vlan(100.try_into().unwrap())
                    .ipv4(src4, dst4, 64),
                (1, _) => eth.single_vlan(100.try_into().unwrap()).ipv6(src, dst, 64),
                (_, 0) => eth
                    .double_vlan(1.try_into().unwrap(), 2.try_into().unwrap())
                    .ipv4(src4, dst4, 64),
                (_, _) => eth
                    .double_vlan(1.try_into().unwrap(), 2.try_into().unwrap())
                    .ipv6(src, dst, 64),
            };
            let mut frame = Vec::new();
            match shape / 2 {
                0 => ip.tcp(sport, dport, 1, 2).syn().write(&mut frame, &payload),
                1 => ip.udp(sport, dport).write(&mut frame, &payload),
                2 if shape % 2 == 0 => ip
                    .icmpv4_echo_request(sport, dport)
                    .write(&mut frame, &payload),
                2 => ip
                    .icmpv6_echo_request(sport, dport)
                    .write(&mut frame, &payload),
                3 if shape % 2 == 0 => ip
                    .icmpv4(etherparse::Icmpv4Type::TimeExceeded(
                        etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit,
                    ))
                    .write(&mut frame, &payload),
                3 => ip
                    .icmpv6(etherparse::Icmpv6Type::TimeExceeded(
                        etherparse::icmpv6::TimeExceededCode::HopLimitExceeded,
                    ))
                    .write(&mut frame, &payload),
                _ => ip
                    .tcp(sport, dport, 3, 4)
                    .ack(5)
                    .fin()
                    .write(&mut frame, &payload),
            }
            .unwrap();
            frame
        })
}

/// An ICMP error whose quote is itself a (mutable) valid packet, so `parse_embedded` runs deep.
fn icmp_error_frame() -> impl Strategy<Value = Vec<u8>> {
    (valid_frame(), any::<bool>(), 0usize..100).prop_map(|(inner, v6, cut)| {
        let inner_start = wire::parse(&inner)
            .map(|i| usize::from(i.l3_offset))
            .unwrap_or(14);
        let quote = &inner[inner_start.min(inner.len())..];
        let quote = &quote[..quote.len().min(cut.max(28))];
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let mut frame = Vec::new();
        if v6 {
            eth.ipv6([1; 16], [2; 16], 64)
                .icmpv6(etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 })
                .write(&mut frame, quote)
        } else {
            eth.ipv4([1; 4], [2; 4], 64)
                .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                    etherparse::icmpv4::DestUnreachableHeader::Port,
                ))
                .write(&mut frame, quote)
        }
        .unwrap();
        frame
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Set { at: usize, value: u8 },
    Truncate { len: usize },
    Extend { bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        4 => (any::<usize>(), prop_oneof![Just(0u8), Just(0xff), Just(0x45), Just(0x60), Just(0x81), Just(0x88), Just(44), Just(60), any::<u8>()])
            .prop_map(|(at, value)| Mutation::Set { at, value }),
        2 => any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        1 => proptest::collection::vec(any::<u8>(), 0..16).prop_map(|bytes| Mutation::Extend { bytes }),
    ]
}

fn apply(frame: &mut Vec<u8>, mutations: &[Mutation]) {
    for mutation in mutations {
        let len = frame.len();
        match mutation {
            Mutation::Flip { at, mask } if len > 0 => frame[at % len] ^= mask,
            Mutation::Set { at, value } if len > 0 => frame[at % len] = *value,
            Mutation::Truncate { len: new_len } => frame.truncate(new_len % (len + 1)),
            Mutation::Extend { bytes } => frame.extend_from_slice(bytes),
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        exercise(&bytes);
    }

    #[test]
    fn arbitrary_ip_after_ethernet_never_panics(
        ethertype in prop_oneof![Just([0x08u8, 0x00]), Just([0x86, 0xdd]), Just([0x08, 0x06]), Just([0x81, 0x00])],
        version in prop_oneof![Just(0x45u8), Just(0x4f), Just(0x60), any::<u8>()],
        rest in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&ethertype);
        frame.push(version);
        frame.extend_from_slice(&rest);
        exercise(&frame);
    }

    #[test]
    fn valid_frames_parse_and_survive_the_views(frame in valid_frame()) {
        let info = wire::parse(&frame).unwrap();
        prop_assert!(info.flow_key().is_some() || info.icmp_embedded_offset.is_some());
        prop_assert!(wire::verify_ipv4_header_checksum(&frame, &info));
        prop_assert!(wire::verify_l4_checksum(&frame, &info));
        exercise(&frame);
    }

    #[test]
    fn mutated_frames_never_panic(
        mut frame in valid_frame(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        apply(&mut frame, &mutations);
        exercise(&frame);
    }

    #[test]
    fn mutated_icmp_errors_never_panic(
        mut frame in icmp_error_frame(),
        mutations in proptest::collection::vec(mutation(), 0..4),
    ) {
        apply(&mut frame, &mutations);
        exercise(&frame);
    }

    #[test]
    fn every_truncation_of_a_valid_frame_is_handled(frame in valid_frame()) {
        for len in 0..frame.len() {
            let prefix = &frame[..len];
            // A prefix that cuts into the IP packet is rejected (or, cut inside the Ethernet
            // header's padding-free packet, never accepted with lengths beyond it).
            if let Ok(info) = wire::parse(prefix) {
                prop_assert!(info.l4_range().end <= len);
            }
            exercise(prefix);
        }
    }
}
