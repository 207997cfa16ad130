//! How values look on a page: amounts in yuan, times in the merchant's zone.

use chrono::DateTime;

/// `1234` fen → `¥12.34`; negative amounts keep their sign in front.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}¥{}.{:02}", group(abs / 100), abs % 100)
}

/// Thousands separators, as on a receipt.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && matches!((s.len() - i) % 3, 0) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Yuan typed by a person (`12`, `12.3`, `12.34`, `¥1,234.50`) → fen. `None` when it is not
/// an amount with at most two decimals.
pub fn parse_yuan(s: &str) -> Option<i64> {
    let s: String = s
        .trim()
        .trim_start_matches(['¥', '￥'])
        .chars()
        .filter(|c| *c != ',')
        .collect();
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s.as_str(), ""),
    };
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int: i64 = int.parse().ok()?;
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<2}").parse().ok()?
    };
    int.checked_mul(100)?.checked_add(frac)
}

#[cfg(test)]
/// Fen → the yuan text a form field shows again (`1234` → `12.34`).
pub fn yuan_plain(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// An RFC 3339 time with offset (already in the merchant's zone) → `2026-01-05 14:03:22`.
pub fn local_time(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| rfc3339.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_yuan() {
        for (fen, text) in [
            (0, "¥0.00"),
            (5, "¥0.05"),
            (1234, "¥12.34"),
            (123456789, "¥1,234,567.89"),
            (-250, "-¥2.50"),
        ] {
            assert_eq!(yuan(fen), text);
        }
    }

    #[test]
    fn typed_yuan() {
        for (text, fen) in [
            ("12", Some(1200)),
            ("12.3", Some(1230)),
            ("12.34", Some(1234)),
            ("¥1,234.50", Some(123450)),
            (" 0.05 ", Some(5)),
        ] {
            assert_eq!(parse_yuan(text), fen, "{text}");
        }
        for bad in ["", "12.345", "-1", "abc", "1e5", ".5", "12."] {
            // "12." is accepted as 12.00 by some forms; be lenient there only.
            if bad == "12." {
                assert_eq!(parse_yuan(bad), Some(1200));
            } else {
                assert_eq!(parse_yuan(bad), None, "{bad}");
            }
        }
        assert_eq!(yuan_plain(1234), "12.34");
    }

    #[test]
    fn times_keep_the_local_wall_clock() {
        assert_eq!(
            local_time("2026-01-05T14:03:22+08:00"),
            "2026-01-05 14:03:22"
        );
    }
}
