//! Big per-worker tables (the connection slab and index: tens of MiB at a
//! million flows) on transparent huge pages, so a lookup's random accesses
//! do not also miss the TLB on every 4 KiB page.
//!
//! [`vec_filled`] reserves the memory, asks the kernel for huge pages
//! (`madvise(MADV_HUGEPAGE)`, honoured when
//! `/sys/kernel/mm/transparent_hugepage/enabled` is `always` or `madvise`)
//! before any page is touched, then fills it. The advice is only a hint:
//! when the kernel refuses it, the table works the same on small pages.
#![allow(unsafe_code)]

/// Huge page size on x86_64 (and most Linux targets).
const HUGE_PAGE: usize = 2 << 20;

/// A vector of `n` copies of `value`, its buffer advised onto huge pages
/// when it spans at least one whole huge page.
pub fn vec_filled<T: Clone>(n: usize, value: T) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    advise(v.spare_capacity_mut());
    v.resize(n, value);
    v
}

/// Advises the huge-page-aligned part of `buf` onto huge pages.
fn advise<T>(buf: &mut [T]) {
    let start = buf.as_mut_ptr() as usize;
    let end = start.saturating_add(std::mem::size_of_val(buf));
    let aligned = start.next_multiple_of(HUGE_PAGE);
    let len = end.saturating_sub(aligned) / HUGE_PAGE * HUGE_PAGE;
    if len == 0 {
        return;
    }
    // SAFETY: `aligned..aligned + len` lies inside `buf`, memory this
    // vector owns; MADV_HUGEPAGE only changes how the kernel backs the
    // pages (contents and validity are unchanged), and a failure (EINVAL
    // when THP is disabled) is harmless.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filled_vectors_hold_their_values_whatever_the_size() {
        for n in [0, 1, 1000, (HUGE_PAGE * 3) / 8 + 7] {
            let v = vec_filled(n, 0xabu64);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|&x| x == 0xab));
        }
    }

    #[test]
    fn big_vectors_get_huge_pages_when_the_kernel_offers_them() {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if !thp.contains("[always]") && !thp.contains("[madvise]") {
            println!("SKIP: transparent huge pages are disabled ({thp:?})");
            return;
        }
        let v = vec_filled(16 * HUGE_PAGE / 8, 1u64);
        let start = v.as_ptr() as usize;
        let end = start + std::mem::size_of_val(v.as_slice());
        // The advice splits the vector's mapping: sum the AnonHugePages of
        // every mapping that overlaps it.
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
        let mut in_range = false;
        let mut huge_kb = 0u64;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        in_range = a < end && start < b;
                        continue;
                    }
                }
            }
            if in_range {
                if let Some(kb) = line.strip_prefix("AnonHugePages:") {
                    huge_kb += kb
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .unwrap_or(0);
                }
            }
        }
        assert!(huge_kb > 0, "no huge pages behind a 32 MiB table");
        assert_eq!(v[v.len() - 1], 1);
    }
}
