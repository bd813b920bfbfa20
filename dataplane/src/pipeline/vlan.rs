//! 802.1Q VLAN sub-interfaces.
//!
//! The dataplane numbers *logical* ports: `0..N` are the physical ports, and `N + i` is
//! sub-interface `vlan_ports[i]` (a VLAN on one physical port, with the physical port's MAC).
//! Snapshots (routes, interface addresses, neighbours) name logical ports. A frame received on
//! a physical port with the tag of one of its sub-interfaces belongs to that sub-interface
//! (ARP/ND answered and learned there); other frames belong to the physical port. A packet
//! leaving through a sub-interface carries its tag: the pipeline rewrites the tag's VLAN id
//! (tagged in, tagged out), pushes a tag (untagged in) or pops it (to an untagged port).
//! Verdict ports stay physical.

use super::PacketBuf;

/// A VLAN sub-interface: VLAN `vlan` (1..=4094) on physical port `port`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct VlanPort {
    pub port: u16,
    pub vlan: u16,
}

const TPID_8021Q: u16 = 0x8100;

/// Changes the frame's outer tag from `from` (as received) to `to` (as the egress port needs).
/// False if the buffer cannot grow or the frame is too short (the frame is then unchanged).
#[cold]
#[inline(never)]
pub(super) fn retag<B: PacketBuf + ?Sized>(
    pkt: &mut B,
    from: Option<u16>,
    to: Option<u16>,
) -> bool {
    match (from, to) {
        (None, None) => true,
        (Some(_), Some(vlan)) => match pkt.data_mut().get_mut(14..16) {
            Some(tci) => {
                // Keep the priority bits (PCP, DEI) of the received tag.
                let old = u16::from_be_bytes([tci[0], tci[1]]);
                tci.copy_from_slice(&((old & 0xf000) | (vlan & 0x0fff)).to_be_bytes());
                true
            }
            None => false,
        },
        (None, Some(vlan)) => {
            if pkt.data().len() < 14 || !pkt.push_front(4) {
                return false;
            }
            let frame = pkt.data_mut();
            frame.copy_within(4..16, 0);
            frame[12..14].copy_from_slice(&TPID_8021Q.to_be_bytes());
            frame[14..16].copy_from_slice(&(vlan & 0x0fff).to_be_bytes());
            true
        }
        (Some(_), None) => {
            if pkt.data().len() < 18 {
                return false;
            }
            pkt.data_mut().copy_within(0..12, 4);
            pkt.pop_front(4)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_rewrites_and_pops_tags() {
        let untagged: Vec<u8> = (0..20u8).collect();
        let mut f = untagged.clone();
        assert!(retag(&mut f, None, Some(100)));
        assert_eq!(&f[..12], &untagged[..12]);
        assert_eq!(&f[12..16], &[0x81, 0x00, 0x00, 100]);
        assert_eq!(&f[16..], &untagged[12..]);
        f[14] |= 0xa0; // priority 5
        assert!(retag(&mut f, Some(100), Some(0x123)));
        assert_eq!(&f[14..16], &[0xa1, 0x23]);
        assert!(retag(&mut f, Some(0x123), None));
        assert_eq!(f, untagged);
        assert!(!retag(&mut vec![0u8; 10], None, Some(1)));
    }
}
