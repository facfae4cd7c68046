//! Wall-clock time in Unix milliseconds, and RFC 3339 timestamps for the sharing API (a few
//! lines of calendar arithmetic rather than a date-time dependency).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, Unix milliseconds.
///
/// ```
/// assert!(nearby_ws_gateway::clock::now_ms() > 1_700_000_000_000);
/// ```
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One reading of both clocks a session uses: a monotonic instant for its timers and Unix
/// milliseconds for what sharing settings and fixes are dated in.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// Tokio's monotonic clock (what `tokio::time::sleep_until` measures).
    pub instant: tokio::time::Instant,
    /// Unix milliseconds.
    pub unix_ms: i64,
}

/// Where a session reads the time. Every reading goes through it, so a test can give a
/// session a clock that moves only with tokio's (paused, advanced) clock.
///
/// ```
/// use nearby_ws_gateway::clock::Clock;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let clock = Clock::following_tokio(1_000);
/// assert!(clock.now().unix_ms >= 1_000);
/// assert!(Clock::system().now().unix_ms > 1_700_000_000_000);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    /// For a clock following tokio's: an instant of tokio's clock and the Unix time then.
    anchor: Option<(tokio::time::Instant, i64)>,
}

impl Clock {
    /// The system's clocks: tokio's monotonic clock and the wall clock ([`now_ms`]).
    pub const fn system() -> Self {
        Self { anchor: None }
    }

    /// Unix time that starts at `unix_ms` now and advances with tokio's clock: paused and
    /// advanced with it in tests, so timed settings and TTLs need no waiting.
    pub fn following_tokio(unix_ms: i64) -> Self {
        Self {
            anchor: Some((tokio::time::Instant::now(), unix_ms)),
        }
    }

    /// Now.
    pub fn now(&self) -> Now {
        let instant = tokio::time::Instant::now();
        let unix_ms = match self.anchor {
            None => now_ms(),
            Some((at, unix_ms)) => unix_ms.saturating_add(
                i64::try_from(instant.saturating_duration_since(at).as_millis())
                    .unwrap_or(i64::MAX),
            ),
        };
        Now { instant, unix_ms }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses an RFC 3339 timestamp (`2026-11-23T18:30:00Z`, `...T18:30:00.250+01:00`) into Unix
/// milliseconds; `None` if it is not one.
///
/// ```
/// use nearby_ws_gateway::clock::parse_rfc3339;
/// assert_eq!(parse_rfc3339("1970-01-01T00:00:01Z"), Some(1_000));
/// assert_eq!(parse_rfc3339("1970-01-01T01:00:00.5+01:00"), Some(500));
/// assert_eq!(parse_rfc3339("2026-02-30T00:00:00Z"), None);
/// ```
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.is_ascii() {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut scaled = 0_i64;
        for (i, b) in fraction.bytes().take(digits).enumerate() {
            if i < 3 {
                scaled = scaled * 10 + i64::from(b - b'0');
            }
        }
        for _ in digits..3 {
            scaled *= 10;
        }
        millis = scaled;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 60 + minutes)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second.min(59) - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// Formats Unix milliseconds as RFC 3339 in UTC with millisecond precision.
///
/// ```
/// use nearby_ws_gateway::clock::format_rfc3339;
/// assert_eq!(format_rfc3339(1_000), "1970-01-01T00:00:01.000Z");
/// ```
pub fn format_rfc3339(ms: i64) -> String {
    let seconds = ms.div_euclid(1_000);
    let millis = ms.rem_euclid(1_000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3_600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_over_centuries() {
        let mut ms = -2_208_988_800_000_i64; // 1900
        while ms < 7_258_118_400_000 {
            // 2200
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms), "{ms}");
            ms += 86_399_777 * 7;
        }
    }

    #[test]
    fn refuses_near_misses() {
        for text in [
            "",
            "2026-11-23",
            "2026-11-23T24:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-23T10:00:00",
            "2026-11-23T10:00:00+1:00",
            "2026-11-23T10:00:00.Z",
            "２026-11-23T10:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text}");
        }
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00-02:30"),
            Some(1_709_217_000_000)
        );
    }
}
