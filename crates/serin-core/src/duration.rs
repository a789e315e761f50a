//! Durations written the way Go writes them.
//!
//! Requests carry durations as Go writes them for `time.ParseDuration`: a sequence
//! of decimal numbers with units `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h` — `"2h"`,
//! `"30m"`, `"1h30m"`, `"1.5s"`, `"300ms"`. Responses give them as Go's
//! `Duration.String()` does — `"2h0m0s"`, `"5m0s"`, `"1m30s"`, `"500ms"`, `"0s"` —
//! so that what the API documents is exactly what Serin answers. Negative
//! durations are refused: nothing in a rollout lasts less than nothing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative span of time with nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(u64);

const NS: u64 = 1;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const M: u64 = 60 * S;
const H: u64 = 60 * M;

impl GoDuration {
    /// Zero.
    pub const ZERO: GoDuration = GoDuration(0);

    /// From whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        GoDuration(s * S)
    }

    /// From whole minutes.
    pub const fn from_mins(m: u64) -> Self {
        GoDuration(m * M)
    }

    /// From whole hours.
    pub const fn from_hours(h: u64) -> Self {
        GoDuration(h * H)
    }

    /// From nanoseconds.
    pub const fn from_nanos(n: u64) -> Self {
        GoDuration(n)
    }

    /// Nanoseconds.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// As a `std::time::Duration`.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0)
    }

    /// As a chrono duration (saturating).
    pub fn to_chrono(self) -> chrono::Duration {
        chrono::Duration::nanoseconds(i64::try_from(self.0).unwrap_or(i64::MAX))
    }
}

/// Why a duration didn't parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDurationError(String);

impl fmt::Display for ParseDurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseDurationError {}

impl FromStr for GoDuration {
    type Err = ParseDurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            ParseDurationError(format!(
                "`{text}` is not a duration ({why}); write e.g. \"30m\", \"2h\", \"1h30m\", \"90s\""
            ))
        };
        let s = text.trim();
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.starts_with('-') {
            return Err(bad("negative"));
        }
        let s = s.strip_prefix('+').unwrap_or(s);
        if s == "0" {
            return Ok(GoDuration::ZERO);
        }
        let mut rest = s;
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let (num, after) = rest.split_at(num_len);
            if num.is_empty() || num == "." || num.matches('.').count() > 1 {
                return Err(bad("expected a number"));
            }
            let unit_len = after
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_len);
            let scale = match unit {
                "ns" => NS,
                "us" | "µs" | "μs" => US,
                "ms" => MS,
                "s" => S,
                "m" => M,
                "h" => H,
                "" => return Err(bad("missing unit")),
                _ => return Err(bad("unknown unit")),
            };
            let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
            let whole: u128 = if whole.is_empty() {
                0
            } else {
                whole.parse().map_err(|_| bad("number too large"))?
            };
            let mut value = whole
                .checked_mul(u128::from(scale))
                .ok_or_else(|| bad("too large"))?;
            // Fraction digits beyond nanosecond precision are dropped, as Go does.
            let mut place = u128::from(scale);
            for d in frac.chars() {
                place /= 10;
                if place == 0 {
                    break;
                }
                value += u128::from(d.to_digit(10).unwrap_or(0)) * place;
            }
            total = total.checked_add(value).ok_or_else(|| bad("too large"))?;
            rest = next;
        }
        u64::try_from(total)
            .map(GoDuration)
            .map_err(|_| bad("too large"))
    }
}

impl fmt::Display for GoDuration {
    /// Go's `Duration.String()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n == 0 {
            return f.write_str("0s");
        }
        if n < S {
            let (unit, scale) = if n < US {
                ("ns", NS)
            } else if n < MS {
                ("µs", US)
            } else {
                ("ms", MS)
            };
            return write!(f, "{}{unit}", fraction(n, scale));
        }
        let h = n / H;
        let m = (n % H) / M;
        let secs = fraction(n % M, S);
        if h > 0 {
            write!(f, "{h}h{m}m{secs}s")
        } else if m > 0 {
            write!(f, "{m}m{secs}s")
        } else {
            write!(f, "{secs}s")
        }
    }
}

/// `n / scale` written with the fewest decimals that keep it exact.
fn fraction(n: u64, scale: u64) -> String {
    let whole = n / scale;
    let mut frac = n % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let mut digits = String::new();
    let mut place = scale / 10;
    while frac > 0 && place > 0 {
        digits.push(char::from(b'0' + u8::try_from(frac / place).unwrap_or(0)));
        frac %= place;
        place /= 10;
    }
    format!("{whole}.{digits}")
}

impl Serialize for GoDuration {
    fn serialize<S2: Serializer>(&self, s: S2) -> Result<S2::Ok, S2::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for GoDuration {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A duration such as \"30m\", \"2h\" or \"1h30m\"; answered Go-style (\"2h0m0s\").",
            ))
            .examples([serde_json::json!("5m0s")])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for GoDuration {}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> GoDuration {
        s.parse().unwrap()
    }

    #[test]
    fn parses_go_durations_as_documented() {
        assert_eq!(d("2h"), GoDuration::from_hours(2));
        assert_eq!(d("30m"), GoDuration::from_mins(30));
        assert_eq!(d("5m"), GoDuration::from_mins(5));
        assert_eq!(d("1h30m"), GoDuration::from_mins(90));
        assert_eq!(d("2h0m0s"), GoDuration::from_hours(2));
        assert_eq!(d("1.5h"), GoDuration::from_mins(90));
        assert_eq!(d("300ms").as_nanos(), 300 * MS);
        assert_eq!(d("0"), GoDuration::ZERO);
    }

    #[test]
    fn formats_like_go() {
        for (input, out) in [
            ("2h", "2h0m0s"),
            ("5m", "5m0s"),
            ("30m", "30m0s"),
            ("4h", "4h0m0s"),
            ("90s", "1m30s"),
            ("12m30s", "12m30s"),
            ("1.5s", "1.5s"),
            ("500ms", "500ms"),
            ("1500us", "1.5ms"),
            ("0s", "0s"),
            ("1h0m0.25s", "1h0m0.25s"),
        ] {
            assert_eq!(d(input).to_string(), out, "{input}");
        }
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "",
            "5",
            "m",
            "-5m",
            "5 minutes",
            "5x",
            "1..5s",
            "99999999999999999999h",
        ] {
            assert!(bad.parse::<GoDuration>().is_err(), "{bad}");
        }
    }

    #[test]
    fn round_trips() {
        for n in [
            1,
            999,
            1_000,
            1_500_000,
            S,
            61 * S,
            H + 1,
            3 * H + 7 * M + 9 * S + 5,
        ] {
            let g = GoDuration(n);
            assert_eq!(g.to_string().parse::<GoDuration>().unwrap(), g, "{g}");
        }
    }
}
