//! Durations written the Castellan way: a whole number and one unit,
//! `30s`, `5m`, `1h`, `7d`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty.
    #[error("empty duration")]
    Empty,
    /// The unit was missing or not one of `s`, `m`, `h`, `d`.
    #[error("duration `{0}` must end in one of s, m, h, d (for example `30s`, `5m`, `1h`, `7d`)")]
    BadUnit(String),
    /// The number part was not a whole non-negative number.
    #[error("duration `{0}` must start with a whole number")]
    BadNumber(String),
    /// The value does not fit.
    #[error("duration `{0}` is too large")]
    TooLarge(String),
}

/// Parses `30s`, `5m`, `1h` or `7d`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let (num, unit) = s.split_at(s.len() - s.chars().last().map_or(0, char::len_utf8));
    let factor: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(DurationError::BadUnit(input.to_owned())),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DurationError::BadNumber(input.to_owned()));
    }
    let n: u64 = num.parse().map_err(|_| DurationError::TooLarge(input.to_owned()))?;
    let secs = n
        .checked_mul(factor)
        .filter(|s| *s <= i64::MAX as u64 / 2)
        .ok_or_else(|| DurationError::TooLarge(input.to_owned()))?;
    Ok(Duration::from_secs(secs))
}

/// Formats a duration in the largest unit that divides it exactly.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    for (unit, factor) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs.is_multiple_of(factor) {
            return format!("{}{}", secs / factor, unit);
        }
    }
    format!("{secs}s")
}

/// A [`Duration`] that reads and writes itself as `30s`, `5m`, `1h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Whole seconds.
    pub fn secs(self) -> i64 {
        i64::try_from(self.0.as_secs()).unwrap_or(i64::MAX)
    }
    /// From whole seconds.
    pub fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
}

impl FromStr for HumanDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(Self)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "-5m",
            "1.5h",
            "5 m",
            "99999999999999999999d",
            "5mm",
            "5é",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["30s", "5m", "1h", "7d", "90s", "0s"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(format_duration(d), if s == "90s" { "90s" } else { s });
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
