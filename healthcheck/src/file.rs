//! `FILE_CHECK`: a `track_file` read as keepalived reads it
//! (`track_file.c`: `process_track_file`, `update_track_file_status`,
//! `process_update_checker_track_file_status`; KEEPALIVED.md §4 and §9).
//!
//! * The file holds an integer, read with `strtol(buf, NULL, 0)` semantics
//!   from its first 127 bytes: leading blanks, a sign, `0x` hex or `0` octal,
//!   digits up to the first other character. No digits, an empty file or a
//!   missing file all read as 0.
//! * With `weight` 0, a non-zero value is a fault (`reverse`: a zero value
//!   is). Otherwise the status is `value × weight` (negated by `reverse`),
//!   clamped to the `i32` range; a status of `i32::MIN` is a fault too.
//! * A fault takes the checker down and removes its weight delta; any other
//!   status brings it up with the status as its weight delta, so the real
//!   server's effective weight is its configured weight plus `value × weight`.
//!
//! Differences: keepalived follows the file with inotify; here it is read
//! every probe (at most [`FILE_POLL_INTERVAL`] apart, see
//! [`crate::state`]). keepalived ignores a number outside
//! `i32::MIN..=i32::MAX + 1` and keeps the previous one; here such a number
//! reads as 0, like any other unusable content. The file is opened with
//! `O_NONBLOCK` (as keepalived does) so that a FIFO cannot block the read,
//! and the read is bounded by `connect_timeout`.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ProbeError;
use crate::spec::FileSpec;

/// The longest interval between two reads of a tracked file.
pub const FILE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How much of the file is read (keepalived's buffer less its NUL).
const READ_LIMIT: u64 = 127;

/// `strtol(text, NULL, 0)` as far as it fits an `i64`; `None` when it does
/// not (keepalived: "Invalid number").
pub(crate) fn parse_number(text: &[u8]) -> Option<i64> {
    let mut rest = text;
    while let [b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c, tail @ ..] = rest {
        rest = tail;
    }
    let negative = match rest {
        [b'-', tail @ ..] => {
            rest = tail;
            true
        }
        [b'+', tail @ ..] => {
            rest = tail;
            false
        }
        _ => false,
    };
    let radix = match rest {
        [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit() => {
            rest = &rest[2..];
            16
        }
        [b'0', ..] => 8,
        _ => 10,
    };
    let mut value: i64 = 0;
    for &c in rest {
        let Some(digit) = char::from(c).to_digit(radix) else {
            break;
        };
        value = value
            .checked_mul(i64::from(radix))?
            .checked_add(i64::from(digit))?;
    }
    Some(if negative { -value } else { value })
}

/// The number in the file, 0 when it cannot be had.
pub(crate) fn value(text: &[u8]) -> i64 {
    parse_number(text)
        .filter(|v| (i64::from(i32::MIN)..=i64::from(i32::MAX) + 1).contains(v))
        .unwrap_or(0)
}

/// The weight delta for `value`, or the fault.
pub(crate) fn status(value: i64, spec: &FileSpec) -> Result<i64, ProbeError> {
    let fault = |message: String| ProbeError::File {
        path: spec.path.display().to_string(),
        message,
    };
    let direction = if spec.reverse { " (reverse)" } else { "" };
    if spec.weight == 0 {
        return if (value != 0) != spec.reverse {
            Err(fault(format!(
                "value {value} with weight 0{direction} is a fault"
            )))
        } else {
            Ok(0)
        };
    }
    let sign = if spec.reverse { -1 } else { 1 };
    let product = i128::from(value) * i128::from(spec.weight) * sign;
    let clamped = product.clamp(i128::from(i32::MIN), i128::from(i32::MAX));
    if clamped == i128::from(i32::MIN) {
        return Err(fault(format!(
            "value {value} × weight {}{direction} is a fault",
            spec.weight
        )));
    }
    // In the i32 range by the clamp above.
    Ok(i64::try_from(clamped).unwrap_or(0))
}

fn read_head(path: &Path) -> Vec<u8> {
    let mut head = Vec::new();
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path);
    match opened {
        Ok(file) => {
            if let Err(e) = file.take(READ_LIMIT).read_to_end(&mut head) {
                tracing::debug!(path = %path.display(), error = %e, "cannot read track file");
                head.clear();
            }
        }
        Err(e) => tracing::debug!(path = %path.display(), error = %e, "cannot open track file"),
    }
    head
}

pub(crate) async fn probe(spec: &FileSpec, timeout: Duration) -> Result<Option<i64>, ProbeError> {
    let path: PathBuf = spec.path.clone();
    let read = tokio::task::spawn_blocking(move || read_head(&path));
    let head = match tokio::time::timeout(timeout, read).await {
        Ok(Ok(head)) => head,
        Ok(Err(join)) => {
            return Err(ProbeError::File {
                path: spec.path.display().to_string(),
                message: format!("read task failed: {join}"),
            })
        }
        Err(_elapsed) => {
            return Err(ProbeError::File {
                path: spec.path.display().to_string(),
                message: format!("read took longer than {timeout:?}"),
            })
        }
    };
    status(value(&head), spec).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_strtol_reads_them() {
        assert_eq!(parse_number(b"42\n"), Some(42));
        assert_eq!(parse_number(b"  -7 apples"), Some(-7));
        assert_eq!(parse_number(b"+3"), Some(3));
        assert_eq!(parse_number(b"0x1F"), Some(31));
        assert_eq!(parse_number(b"017"), Some(15));
        assert_eq!(parse_number(b"0"), Some(0));
        assert_eq!(parse_number(b"0x"), Some(0), "strtol reads the 0");
        assert_eq!(parse_number(b"abc"), Some(0));
        assert_eq!(parse_number(b""), Some(0));
        assert_eq!(parse_number(b"99999999999999999999"), None);
        assert_eq!(value(b"99999999999999999999"), 0);
        assert_eq!(
            value(b"2147483648"),
            2_147_483_648,
            "INT32_MAX + 1 is allowed"
        );
        assert_eq!(value(b"2147483649"), 0);
        assert_eq!(value(b"-2147483648"), -2_147_483_648);
    }

    fn spec(weight: i64, reverse: bool) -> FileSpec {
        FileSpec {
            path: "/run/x".into(),
            weight,
            reverse,
        }
    }

    #[test]
    fn weight_zero_faults_on_non_zero() {
        assert_eq!(status(0, &spec(0, false)), Ok(0));
        assert!(status(5, &spec(0, false)).is_err());
        assert!(status(-1, &spec(0, false)).is_err());
        assert!(
            status(0, &spec(0, true)).is_err(),
            "reverse: zero is the fault"
        );
        assert_eq!(status(5, &spec(0, true)), Ok(0));
        assert_eq!(
            status(5, &spec(0, false)).expect_err("fault").to_string(),
            "track file /run/x: value 5 with weight 0 is a fault"
        );
    }

    #[test]
    fn weighted_values_become_deltas() {
        assert_eq!(status(3, &spec(10, false)), Ok(30));
        assert_eq!(status(3, &spec(10, true)), Ok(-30));
        assert_eq!(status(-2, &spec(-5, false)), Ok(10));
        assert_eq!(status(0, &spec(7, false)), Ok(0));
        assert_eq!(
            status(i64::from(i32::MAX), &spec(4, false)),
            Ok(i64::from(i32::MAX)),
            "clamped"
        );
        let err = status(-1_000_000, &spec(1_000_000, false)).expect_err("clamped to the fault");
        assert_eq!(
            err.to_string(),
            "track file /run/x: value -1000000 × weight 1000000 is a fault"
        );
    }
}
