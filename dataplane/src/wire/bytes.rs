//! Panic-free field access shared by the views: a read past the end of the buffer yields zeros
//! and a write past the end is dropped. Views validate lengths once in `new_checked`, so on
//! checked views these fallbacks never trigger; they exist so that no input, and no misuse of
//! `new_unchecked`, can make an accessor panic.

/// A byte range of a header, as in smoltcp's `field` modules.
pub type Field = core::ops::Range<usize>;

/// The `N` bytes at `at`, or zeros if they are not all in `buf`.
#[inline(always)]
pub(crate) fn array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    match buf.get(at..).and_then(|rest| rest.first_chunk::<N>()) {
        Some(bytes) => *bytes,
        None => [0; N],
    }
}

#[inline(always)]
pub(crate) fn u8_at(buf: &[u8], at: usize) -> u8 {
    buf.get(at).copied().unwrap_or(0)
}

#[inline(always)]
pub(crate) fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(array(buf, at))
}

#[inline(always)]
pub(crate) fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(array(buf, at))
}

/// Writes `value` at `at` if it fits entirely; otherwise leaves `buf` untouched.
#[inline(always)]
pub(crate) fn put(buf: &mut [u8], at: usize, value: &[u8]) {
    if let Some(dst) = buf
        .get_mut(at..)
        .and_then(|rest| rest.get_mut(..value.len()))
    {
        dst.copy_from_slice(value);
    }
}

#[inline(always)]
pub(crate) fn put_u8(buf: &mut [u8], at: usize, value: u8) {
    if let Some(byte) = buf.get_mut(at) {
        *byte = value;
    }
}

#[inline(always)]
pub(crate) fn put_u16(buf: &mut [u8], at: usize, value: u16) {
    put(buf, at, &value.to_be_bytes());
}

#[inline(always)]
pub(crate) fn put_u32(buf: &mut [u8], at: usize, value: u32) {
    put(buf, at, &value.to_be_bytes());
}

/// `buf[range]`, or an empty slice if the range does not lie within `buf`.
#[inline(always)]
pub(crate) fn slice(buf: &[u8], range: core::ops::Range<usize>) -> &[u8] {
    buf.get(range).unwrap_or(&[])
}

#[inline(always)]
pub(crate) fn slice_mut(buf: &mut [u8], range: core::ops::Range<usize>) -> &mut [u8] {
    buf.get_mut(range).unwrap_or(&mut [])
}
