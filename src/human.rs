//! Figures as an operator reads them, in `deskbridge status` and in the
//! log's lines.

/// A span of seconds: "45 s", "3 min", "2 h 14 min", "3 d 2 h".
pub fn duration(s: i64) -> String {
    let s = s.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

/// A `std` duration, as `duration` says it.
pub fn span(d: std::time::Duration) -> String {
    duration(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_an_operator_says_them() {
        assert_eq!(duration(-3), "0 s");
        assert_eq!(duration(45), "45 s");
        assert_eq!(duration(200), "3 min");
        assert_eq!(duration(2 * 3600 + 14 * 60 + 5), "2 h 14 min");
        assert_eq!(duration(3 * 86400 + 2 * 3600), "3 d 2 h");
        assert_eq!(span(std::time::Duration::from_millis(61_500)), "1 min");
    }
}
