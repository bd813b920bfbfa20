//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums are kept unfolded in a `u64` while they are being built (one add per 4 bytes, no carry
//! handling in the loop) and folded to 16 bits once at the end. Because 2^16 ≡ 1 (mod 0xffff),
//! adding big-endian 32-bit words and folding gives the same one's-complement sum as adding
//! 16-bit words one by one.
//!
//! Zero has two encodings in one's complement (0x0000 and 0xffff). A checksum computed over data
//! that is not all zeros is never 0xffff, so [`internet_checksum`] and the `update_*` functions
//! below agree bit for bit on real headers.
//!
//! UDP: a transmitted checksum of 0 means "no checksum" (allowed for IPv4 only). Callers must
//! (a) skip verification and incremental updates when the stored UDP checksum is 0, and
//! (b) store 0xffff when a computed UDP checksum comes out as 0 (see
//! [`crate::wire::udp::UdpPacket::fill_checksum`]).

/// The unfolded sum of `data` read as big-endian 16-bit words; an odd last byte is padded with a
/// zero byte on the right, as RFC 1071 says.
///
/// Partial sums of several pieces may be added together as long as every piece but the last has
/// an even length. The result fits any realistic packet: it would take 2^32 words to overflow.
#[inline]
pub fn sum(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        if let &[a, b, c, d] = word {
            acc += u64::from(u32::from_be_bytes([a, b, c, d]));
        }
    }
    acc + match *words.remainder() {
        [a, b, c] => u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
        [a, b] => u64::from(u16::from_be_bytes([a, b])),
        [a] => u64::from(a) << 8,
        _ => 0,
    }
}

/// Folds an unfolded sum to 16 bits with end-around carries (the one's-complement sum, not yet
/// inverted). Returns 0 only for a zero input.
#[inline]
pub const fn fold(sum: u64) -> u16 {
    // Each step halves the width and adds its carry back in, which cannot carry again: a sum
    // of two n-bit halves that carried is at most 2^n - 2 once the carry is taken out.
    let (s, carry) = (sum as u32).overflowing_add((sum >> 32) as u32);
    let s = s + carry as u32;
    let (s, carry) = (s as u16).overflowing_add((s >> 16) as u16);
    s + carry as u16
}

/// Adds two unfolded sums with an end-around carry, so that even sums that fill the `u64`
/// cannot overflow (2^64 ≡ 1 mod 0xffff).
#[inline]
pub const fn combine(a: u64, b: u64) -> u64 {
    let (sum, carry) = a.overflowing_add(b);
    sum + carry as u64
}

/// The checksum to store: the complement of the folded sum.
#[inline]
pub const fn finish(sum: u64) -> u16 {
    !fold(sum)
}

/// The Internet checksum of `data` (for an IPv4 header: with its checksum field zeroed).
#[inline]
pub fn internet_checksum(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// Whether `data`, including its stored checksum field, sums to all ones (i.e. verifies).
#[inline]
pub fn verifies(data: &[u8]) -> bool {
    fold(sum(data)) == 0xffff
}

/// Unfolded sum of the IPv4 pseudo-header (RFC 793/768): source, destination, zero, protocol,
/// and the L4 length (header + payload).
#[inline]
pub fn pseudo_header_v4(src: &[u8; 4], dst: &[u8; 4], protocol: u8, l4_len: u16) -> u64 {
    u64::from(u32::from_be_bytes(*src))
        + u64::from(u32::from_be_bytes(*dst))
        + u64::from(protocol)
        + u64::from(l4_len)
}

/// Unfolded sum of the IPv6 pseudo-header (RFC 8200 §8.1): source, destination, 32-bit upper
/// layer length, three zero bytes, next header.
#[inline]
pub fn pseudo_header_v6(src: &[u8; 16], dst: &[u8; 16], protocol: u8, l4_len: u32) -> u64 {
    sum(src) + sum(dst) + u64::from(protocol) + u64::from(l4_len >> 16) + u64::from(l4_len & 0xffff)
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered data changed from
/// `old` to `new`: HC' = ~(~HC + ~m + m').
#[inline]
pub const fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    !fold(!checksum as u64 + !old as u64 + new as u64)
}

/// [`update_u16`] for an aligned 32-bit field (an IPv4 address, a TCP sequence number).
#[inline]
pub const fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let removed = !(old >> 16) as u16 as u64 + !(old as u16) as u64;
    let added = (new >> 16) as u64 + (new & 0xffff) as u64;
    !fold(!checksum as u64 + removed + added)
}

/// [`update_u16`] for a 4-byte IPv4 address.
#[inline]
pub const fn update_addr4(checksum: u16, old: &[u8; 4], new: &[u8; 4]) -> u16 {
    update_u32(checksum, u32::from_be_bytes(*old), u32::from_be_bytes(*new))
}

/// [`update_u16`] for a 16-byte IPv6 address (eight words at once).
#[inline]
pub fn update_addr16(checksum: u16, old: &[u8; 16], new: &[u8; 16]) -> u16 {
    // ~m summed word by word equals 8 * 0xffff - sum(m); ~x is 0xffff - x for a 16-bit x.
    let complemented_old = 8 * 0xffff - fold_words_unreduced(old);
    let added = fold_words_unreduced(new);
    !fold(u64::from(!checksum) + complemented_old + added)
}

/// Plain sum of the eight 16-bit words of an address (at most 8 * 0xffff, no folding).
#[inline]
fn fold_words_unreduced(addr: &[u8; 16]) -> u64 {
    let mut acc = 0u64;
    let mut words = addr.chunks_exact(2);
    for word in &mut words {
        if let &[a, b] = word {
            acc += u64::from(u16::from_be_bytes([a, b]));
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Word-by-word reference straight from RFC 1071.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            acc += u32::from(word);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(internet_checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        // A captured header (Wikipedia's example): checksum b861.
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&header), 0xb861);
        header[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verifies(&header));
    }

    #[test]
    fn corner_cases() {
        assert_eq!(internet_checksum(&[]), 0xffff);
        assert_eq!(internet_checksum(&[0xff, 0xff]), 0x0000);
        assert_eq!(fold(0xffff_ffff_ffff_ffff), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(fold(0xffff), 0xffff);
        assert_eq!(fold(0xffff * 0x1234_5678_9abc), 0xffff);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0x1_ffff_fffe), 0xffff);
        // Updating a word to itself changes nothing (for every checksum but the 0xffff that
        // only all-zero data can produce).
        for csum in [0u16, 1, 0x7fff, 0xfffe] {
            assert_eq!(update_u16(csum, 0x1234, 0x1234), csum);
            assert_eq!(update_u16(csum, 0, 0), csum);
            assert_eq!(update_u16(csum, 0xffff, 0xffff), csum);
        }
    }

    #[test]
    fn pseudo_headers_match_etherparse() {
        let tcp = etherparse::TcpHeader::new(1234, 80, 7, 1000);
        let payload = b"hello, world";
        let src4 = [198, 18, 0, 1];
        let dst4 = [198, 18, 100, 10];
        let theirs = tcp.calc_checksum_ipv4_raw(src4, dst4, payload).unwrap();
        let mut segment = tcp.to_bytes().to_vec();
        segment.extend_from_slice(payload);
        let len = segment.len() as u16;
        let ours = finish(pseudo_header_v4(&src4, &dst4, 6, len) + sum(&segment));
        assert_eq!(ours, theirs);

        let src6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst6 = [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 2,
        ];
        let theirs = tcp.calc_checksum_ipv6_raw(src6, dst6, payload).unwrap();
        let ours = finish(pseudo_header_v6(&src6, &dst6, 6, len.into()) + sum(&segment));
        assert_eq!(ours, theirs);
    }

    proptest! {
        /// The fold is the sum modulo 0xffff in one's-complement form: 0 only for 0, and
        /// 0xffff (not 0) for the other multiples of 0xffff.
        #[test]
        fn fold_is_the_sum_modulo_0xffff(sum in any::<u64>()) {
            let expected = match sum % 0xffff {
                0 if sum == 0 => 0,
                0 => 0xffff,
                rest => rest as u16,
            };
            prop_assert_eq!(fold(sum), expected);
        }

        #[test]
        fn fast_sum_equals_reference(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(internet_checksum(&data), reference(&data));
        }

        #[test]
        fn split_sums_add_up(data in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..150) {
            let cut = (cut * 2).min(data.len() & !1);
            let (a, b) = data.split_at(cut);
            prop_assert_eq!(finish(sum(a) + sum(b)), internet_checksum(&data));
        }

        #[test]
        fn incremental_equals_full(
            mut data in proptest::collection::vec(any::<u8>(), 24..64),
            new16 in any::<u16>(),
            new32 in any::<u32>(),
            new128 in any::<[u8; 16]>(),
        ) {
            // Keep the data from being all zeros, the one case where 0 and 0xffff differ.
            data[0] |= 1;
            let csum = internet_checksum(&data);

            let old16 = u16::from_be_bytes([data[2], data[3]]);
            data[2..4].copy_from_slice(&new16.to_be_bytes());
            let csum = update_u16(csum, old16, new16);
            prop_assert_eq!(csum, internet_checksum(&data));

            let old32 = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            data[4..8].copy_from_slice(&new32.to_be_bytes());
            let csum = update_u32(csum, old32, new32);
            prop_assert_eq!(csum, internet_checksum(&data));

            let mut old128 = [0u8; 16];
            old128.copy_from_slice(&data[8..24]);
            data[8..24].copy_from_slice(&new128);
            let csum = update_addr16(csum, &old128, &new128);
            prop_assert_eq!(csum, internet_checksum(&data));
        }
    }
}
