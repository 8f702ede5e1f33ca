//! Value syntaxes shared by many keywords (KEEPALIVED.md §1.8), with
//! keepalived's messages. Each parser returns the value, or the message to
//! report at the offending token.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Largest TIMER keepalived accepts for the keywords lowered here (`UINT_MAX` µs).
pub(crate) const TIMER_MAX_US: u64 = u32::MAX as u64;

/// A parsed TIMER and whether it had to be rounded to microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timer {
    pub value: Duration,
    pub rounded: bool,
}

/// TIMER: decimal seconds, up to 6 fractional digits (more are rounded),
/// in `[min_us, TIMER_MAX_US]` microseconds.
pub(crate) fn timer(s: &str, min_us: u64) -> Result<Timer, String> {
    let invalid = || format!("invalid number '{s}'");
    let range = || {
        format!(
            "number '{s}' outside range [{}, {}]",
            fmt_us(min_us),
            fmt_us(TIMER_MAX_US)
        )
    };
    if s.starts_with('-') {
        return Err(range());
    }
    let body = s.strip_prefix('+').unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Err(invalid());
    }
    let int: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| range())?
    };
    let mut us = 0u64;
    for (i, c) in frac
        .chars()
        .chain(std::iter::repeat('0'))
        .take(6)
        .enumerate()
    {
        let d = u64::from(c.to_digit(10).unwrap_or(0));
        us += d * 10u64.pow(5 - u32::try_from(i).unwrap_or(5));
    }
    let rounded = frac.len() > 6;
    if frac.chars().nth(6).is_some_and(|c| c >= '5') {
        us += 1;
    }
    let total = int
        .checked_mul(1_000_000)
        .and_then(|v| v.checked_add(us))
        .ok_or_else(range)?;
    if total < min_us || total > TIMER_MAX_US {
        return Err(range());
    }
    Ok(Timer {
        value: Duration::from_micros(total),
        rounded,
    })
}

fn fmt_us(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// A base-10 unsigned integer in `[min, max]`.
pub(crate) fn uint(s: &str, min: u64, max: u64) -> Result<u64, String> {
    let body = s.strip_prefix('+').unwrap_or(s);
    if body.is_empty() || !body.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("invalid number '{s}'"));
    }
    match body.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("number '{s}' outside range [{min}, {max}]")),
    }
}

/// A literal IP address; IPv6 when it contains `:`.
pub(crate) fn ip(s: &str) -> Result<IpAddr, String> {
    let parsed = if s.contains(':') {
        s.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        s.parse::<Ipv4Addr>().map(IpAddr::V4)
    };
    parsed.map_err(|_| format!("invalid IP address '{s}'"))
}

/// `<BOOL>`: lowercase `on|off|true|false|yes|no` only.
pub(crate) fn boolean(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("invalid boolean value '{s}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_accepts_decimal_seconds() {
        assert_eq!(timer("3", 0).map(|t| t.value), Ok(Duration::from_secs(3)));
        assert_eq!(
            timer("1.5", 0).map(|t| t.value),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            timer("0.000001", 1).map(|t| t.value),
            Ok(Duration::from_micros(1))
        );
        assert_eq!(
            timer(".25", 0).map(|t| t.value),
            Ok(Duration::from_millis(250))
        );
    }

    #[test]
    fn timer_rounds_beyond_microseconds() {
        let t = timer("0.0000015", 0).expect("valid timer");
        assert!(t.rounded);
        assert_eq!(t.value, Duration::from_micros(2));
    }

    #[test]
    fn timer_rejects_negative_and_garbage() {
        assert_eq!(
            timer("-1", 0),
            Err("number '-1' outside range [0.000000, 4294.967295]".into())
        );
        assert_eq!(timer("12abc", 0), Err("invalid number '12abc'".into()));
        assert_eq!(timer(".", 0), Err("invalid number '.'".into()));
        assert_eq!(
            timer("0", 1),
            Err("number '0' outside range [0.000001, 4294.967295]".into())
        );
        assert!(timer("5000", 0).is_err());
    }

    #[test]
    fn uint_is_base_10_and_ranged() {
        assert_eq!(uint("42", 0, 100), Ok(42));
        assert_eq!(uint("0x10", 0, 100), Err("invalid number '0x10'".into()));
        assert_eq!(uint("-1", 0, 100), Err("invalid number '-1'".into()));
        assert_eq!(
            uint("101", 0, 100),
            Err("number '101' outside range [0, 100]".into())
        );
    }

    #[test]
    fn ip_family_follows_colon() {
        assert_eq!(ip("10.0.0.1"), Ok(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert!(matches!(ip("2001:db8::1"), Ok(IpAddr::V6(_))));
        assert_eq!(
            ip("host.example"),
            Err("invalid IP address 'host.example'".into())
        );
    }

    #[test]
    fn boolean_is_lowercase_only() {
        assert_eq!(boolean("yes"), Ok(true));
        assert_eq!(boolean("off"), Ok(false));
        assert!(boolean("On").is_err());
    }
}
