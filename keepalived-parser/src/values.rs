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

/// A number of milliseconds with at most 3 decimals (keepalived's
/// `read_decimal_unsigned_strvec` with a shift of 3), in `[min_ms, max_ms]`.
pub(crate) fn millis(s: &str, min_ms: u64, max_ms: u64) -> Result<Duration, String> {
    let invalid = || format!("invalid number '{s}'");
    let range = || format!("number '{s}' outside range [{min_ms}, {max_ms}]");
    let body = s.strip_prefix('+').unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || frac.len() > 3 {
        return Err(invalid());
    }
    let int: u64 = int.parse().map_err(|_| range())?;
    let mut us = int.checked_mul(1000).ok_or_else(range)?;
    for (scale, c) in [100u64, 10, 1].into_iter().zip(frac.bytes()) {
        us = us.saturating_add(u64::from(c - b'0') * scale);
    }
    if us < min_ms.saturating_mul(1000) || us > max_ms.saturating_mul(1000) {
        return Err(range());
    }
    Ok(Duration::from_micros(us))
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

/// DPVS's `src-range`/`dst-range`: `IP[-IP][:PORT[-PORT]]`, IPv6 written
/// `[IP[-IP]][:PORT[-PORT]]` (DPVS's `inet_addr_range_parse`). DPVS clears
/// the match silently when this fails; dpvsd reports it.
pub(crate) fn match_range(s: &str) -> Result<(), String> {
    let bad = || format!("invalid address range '{s}' (expected IP[-IP][:PORT[-PORT]])");
    let (ips, ports, v6) = match s.strip_prefix('[') {
        Some(rest) => {
            let (ips, after) = rest.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (ips, None, true),
                _ => (ips, Some(after.strip_prefix(':').ok_or_else(bad)?), true),
            }
        }
        None => match s.split_once(':') {
            Some((ips, ports)) => (ips, Some(ports), false),
            None => (s, None, false),
        },
    };
    let addr_ok = |a: &str| {
        if v6 {
            a.parse::<Ipv6Addr>().is_ok()
        } else {
            a.parse::<Ipv4Addr>().is_ok()
        }
    };
    let port_ok = |p: &str| {
        !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && p.parse::<u16>().is_ok()
    };
    let pair = |text: &str, ok: &dyn Fn(&str) -> bool| match text.split_once('-') {
        Some((lo, hi)) => ok(lo) && ok(hi),
        None => ok(text),
    };
    if ips.is_empty() || !pair(ips, &addr_ok) || ports.is_some_and(|p| !pair(p, &port_ok)) {
        return Err(bad());
    }
    Ok(())
}

/// `<BOOL>`: lowercase `on|off|true|false|yes|no` only.
pub(crate) fn boolean(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("invalid boolean value '{s}'")),
    }
}

/// keepalived's script tokeniser (`alloc_strvec_quoted_escaped`, §1.4 item 2):
/// words split on blanks; `"..."` and `'...'` group text and concatenate
/// shell-style with what touches them; `\` escapes (`\a \b \E \f \n \r \t
/// \v \nnn \xHH \cC`, any other character stands for itself) work inside
/// and outside quotes.
pub(crate) fn script_words(s: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && chars[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match (quote, c) {
                (_, '\\') => {
                    let Some(&e) = chars.get(i) else {
                        return Err(format!("String '{s}': missing escape character at end"));
                    };
                    i += 1;
                    word.push(match e {
                        'a' => '\u{7}',
                        'b' => '\u{8}',
                        'E' => '\u{1b}',
                        'f' => '\u{c}',
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        'v' => '\u{b}',
                        'x' if chars.get(i).is_some_and(char::is_ascii_hexdigit) => {
                            let mut v: u32 = 0;
                            while let Some(d) = chars.get(i).and_then(|c| c.to_digit(16)) {
                                v = (v << 4 | d) & 0xff;
                                i += 1;
                            }
                            char::from_u32(v).unwrap_or('?')
                        }
                        'c' if i < chars.len() => {
                            let v = u32::from(chars[i]) & 0x1f;
                            i += 1;
                            char::from_u32(v).unwrap_or('?')
                        }
                        '0'..='7' => {
                            let mut v = e.to_digit(8).unwrap_or(0);
                            for _ in 0..2 {
                                match chars.get(i).and_then(|c| c.to_digit(8)) {
                                    Some(d) => {
                                        v = v * 8 + d;
                                        i += 1;
                                    }
                                    None => break,
                                }
                            }
                            char::from_u32(v & 0xff).unwrap_or('?')
                        }
                        other => other,
                    });
                }
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), _) if c == q => quote = None,
                (None, _) if c.is_ascii_whitespace() => break,
                _ => word.push(c),
            }
        }
        if let Some(q) = quote {
            return Err(format!("String '{s}': missing terminating {q}"));
        }
        words.push(word);
    }
    Ok(words)
}

/// keepalived's `read_hex_str`: bytes of two hex digits (or one, before a
/// blank or the end), blanks between bytes allowed. With `wildcards`, `X`/`x`
/// nibbles are accepted and returned as set bits of the mask.
pub(crate) fn hex_bytes(s: &str, wildcards: bool) -> Option<(Vec<u8>, Vec<u8>)> {
    let nibble = |c: char| -> Option<(u8, u8)> {
        match c {
            'x' | 'X' if wildcards => Some((0, 0x0f)),
            _ => c
                .to_digit(16)
                .and_then(|d| u8::try_from(d).ok())
                .map(|d| (d, 0)),
        }
    };
    let chars: Vec<char> = s.chars().collect();
    let (mut data, mut mask) = (Vec::new(), Vec::new());
    let mut i = 0;
    loop {
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            i += 1;
        }
        let Some(&c) = chars.get(i) else { break };
        i += 1;
        let (mut v, mut m) = nibble(c)?;
        if let Some(&c2) = chars.get(i).filter(|&&c| c != ' ') {
            i += 1;
            let (v2, m2) = nibble(c2)?;
            v = v << 4 | v2;
            m = m << 4 | m2;
        }
        data.push(v);
        mask.push(m);
    }
    (!data.is_empty()).then_some((data, mask))
}

/// An MD5 `digest`: exactly 32 hex digits.
pub(crate) fn md5_digest(s: &str) -> Result<[u8; 16], String> {
    if s.len() != 32 {
        return Err(format!(
            "digest '{s}' character length should be 32 rather than {}",
            s.len()
        ));
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = s
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(|| {
                format!(
                    "Unable to interpret hex digit in '{s}' at offset {}/{}",
                    2 * i,
                    2 * i + 1
                )
            })?;
    }
    Ok(out)
}

/// An HTTP `status_code` word: `N` or `N-M`, within 100..=599.
pub(crate) fn status_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("Invalid HTTP_GET status code '{s}'");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let lo = uint(a, 100, 599).map_err(|_| bad())?;
    let hi = uint(b, 100, 599).map_err(|_| bad())?;
    if hi < lo {
        return Err(bad());
    }
    Ok((
        u16::try_from(lo).map_err(|_| bad())?,
        u16::try_from(hi).map_err(|_| bad())?,
    ))
}

/// The edit distance between two words (optimal string alignment:
/// insertions, deletions, substitutions and swaps of neighbours), ignoring
/// ASCII case, in half units: every edit costs 2, and words that differ
/// only in case are 1 apart. Words are bounded by the line length, so the
/// quadratic table stays small.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * w + j] = if i == 0 || j == 0 {
                2 * (i + j)
            } else {
                let sub = if a[i - 1].eq_ignore_ascii_case(&b[j - 1]) {
                    0
                } else {
                    2
                };
                let mut best = (d[(i - 1) * w + j] + 2)
                    .min(d[i * w + j - 1] + 2)
                    .min(d[(i - 1) * w + j - 1] + sub);
                if i > 1
                    && j > 1
                    && a[i - 1].eq_ignore_ascii_case(&b[j - 2])
                    && a[i - 2].eq_ignore_ascii_case(&b[j - 1])
                {
                    best = best.min(d[(i - 2) * w + j - 2] + 2);
                }
                best
            };
        }
    }
    match d[a.len() * w + b.len()] {
        0 if a != b => 1,
        n => n,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn edit_distances() {
        use super::edit_distance;
        assert_eq!(edit_distance("delay_loop", "delay_loop"), 0);
        assert_eq!(edit_distance("delay_lop", "delay_loop"), 2);
        assert_eq!(edit_distance("dealy_loop", "delay_loop"), 2);
        assert_eq!(edit_distance("tcp_check", "TCP_CHECK"), 1);
        assert_eq!(edit_distance("TCP_CHEK", "TCP_CHECK"), 2);
        assert_eq!(edit_distance("", "abc"), 6);
        assert_eq!(edit_distance("lb_algo", "lb_kind"), 8);
    }

    #[test]
    fn match_ranges_follow_dpvs() {
        for ok in [
            "10.0.0.1",
            "10.0.0.1-10.0.0.9",
            "10.0.0.1-10.0.0.9:80-90",
            "10.0.0.1:80",
            "[2001:db8::1-2001:db8::9]:443",
            "[::1]",
        ] {
            assert_eq!(match_range(ok), Ok(()), "{ok}");
        }
        for bad in [
            "bogus",
            "10.0.0.1-",
            "10.0.0.1:x",
            "[::1",
            "::1",
            "10.0.0.1:70000",
            "",
        ] {
            assert!(match_range(bad).is_err(), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn script_words_group_concatenate_and_escape() {
        let w = |s: &str| script_words(s).expect("valid");
        assert_eq!(
            w(r#""/bin/x 'a b' c" user grp"#),
            vec!["/bin/x 'a b' c", "user", "grp"]
        );
        assert_eq!(w(r#"abcd" efg h""#), vec!["abcd efg h"]);
        assert_eq!(w("/bin/x 'a b'c d"), vec!["/bin/x", "a bc", "d"]);
        assert_eq!(w(r"a\tb \x41\102 \cA \q"), vec!["a\tb", "AB", "\u{1}", "q"]);
        assert_eq!(w("  "), Vec::<String>::new());
        assert!(script_words("'open").is_err());
    }

    #[test]
    fn hex_bytes_like_read_hex_str() {
        assert_eq!(
            hex_bytes("0a 1 ff", false),
            Some((vec![0x0a, 0x01, 0xff], vec![0, 0, 0]))
        );
        assert_eq!(
            hex_bytes("4x X1", true),
            Some((vec![0x40, 0x01], vec![0x0f, 0xf0]))
        );
        assert_eq!(hex_bytes("4x", false), None);
        assert_eq!(hex_bytes("", false), None);
        assert_eq!(hex_bytes("zz", false), None);
    }

    #[test]
    fn digests_and_status_codes() {
        assert_eq!(
            md5_digest("640205b7b0fc66c1ea91c463fac6334d").map(|d| d[0]),
            Ok(0x64)
        );
        assert!(md5_digest("640205").is_err());
        assert!(md5_digest("g40205b7b0fc66c1ea91c463fac6334d").is_err());
        assert_eq!(status_range("200-299"), Ok((200, 299)));
        assert_eq!(status_range("404"), Ok((404, 404)));
        assert!(status_range("99").is_err());
        assert!(status_range("300-200").is_err());
    }

    #[test]
    fn millis_take_three_decimals_and_check_the_range() {
        assert_eq!(millis("10", 1, 100), Ok(Duration::from_millis(10)));
        assert_eq!(millis("1.5", 1, 100), Ok(Duration::from_micros(1500)));
        assert_eq!(millis("0.999", 1, 100).map_err(|_| ()), Err(()));
        assert_eq!(millis("1.0001", 1, 100).map_err(|_| ()), Err(()));
        assert_eq!(millis("101", 1, 100).map_err(|_| ()), Err(()));
        assert_eq!(millis("-1", 1, 100).map_err(|_| ()), Err(()));
    }

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
