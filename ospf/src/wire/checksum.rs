//! The two OSPF checksums: the Internet checksum over the packet (RFC 2328
//! §D.4) and the Fletcher checksum over each LSA (§12.1.7, RFC 905 annex B).

/// One's-complement Internet checksum of `data` (RFC 1071), ready to store.
pub fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn fletcher_sums(data: &[u8], skip: Option<usize>) -> (i64, i64) {
    let (mut c0, mut c1) = (0i64, 0i64);
    for (i, &b) in data.iter().enumerate() {
        let b = match skip {
            Some(at) if i == at || i == at + 1 => 0,
            _ => i64::from(b),
        };
        c0 = (c0 + b) % 255;
        c1 = (c1 + c0) % 255;
    }
    (c0, c1)
}

/// Fletcher-16 checksum of `data` with the checksum field at `offset` (and
/// `offset + 1`) taken as zero, computed so that storing it at `offset`
/// makes the whole of `data` verify. For an LSA, `data` is the LSA without
/// its 2-byte age and `offset` is 14.
///
/// # Panics
/// Never: an `offset` past the end simply yields the checksum of `data`.
pub fn fletcher16(data: &[u8], offset: usize) -> u16 {
    let (c0, c1) = fletcher_sums(data, Some(offset));
    let len = data.len() as i64;
    let mut x = ((len - offset as i64 - 1) * c0 - c1) % 255;
    if x <= 0 {
        x += 255;
    }
    let mut y = 510 - c0 - x;
    if y > 255 {
        y -= 255;
    }
    ((x as u16) << 8) | (y as u16 & 0xff)
}

/// Whether `data` (checksum field included) verifies: both Fletcher sums are zero.
pub fn fletcher16_verify(data: &[u8]) -> bool {
    fletcher_sums(data, None) == (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fletcher_roundtrip() {
        let mut data: Vec<u8> = (0u8..60).map(|i| i.wrapping_mul(37)).collect();
        let ck = fletcher16(&data, 14);
        data[14..16].copy_from_slice(&ck.to_be_bytes());
        assert!(fletcher16_verify(&data));
        data[3] ^= 1;
        assert!(!fletcher16_verify(&data));
    }

    #[test]
    fn internet_checksum_verifies_to_zero() {
        let mut data = vec![
            0x45u8, 0, 0, 0x1c, 1, 2, 0, 0, 0x40, 0x11, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let ck = internet_checksum(&data);
        data[10..12].copy_from_slice(&ck.to_be_bytes());
        assert_eq!(internet_checksum(&data), 0);
    }
}
