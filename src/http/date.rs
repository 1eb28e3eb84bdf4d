//! The `Date` header: the current time as an IMF-fixdate
//! (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 section 5.6.7); and a time
//! as the Common Log Format writes it, for access logs.
//!
//! Every response carries one. The value changes once a second, so each
//! thread keeps the last one it formatted and reuses it within the same
//! second: a busy worker formats the date once a second, not once a request,
//! and no lock is shared between workers.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

thread_local! {
    /// The last IMF-fixdate formatted, and the second it is for.
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
    /// The same for the Common Log Format's time.
    static COMMON_LOG_CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

/// A time as text, and the second it is right for.
struct Cached {
    /// The start of the second.
    from: SystemTime,
    /// The start of the next.
    until: SystemTime,
    text: String,
}

/// The current time as an IMF-fixdate.
#[cfg(test)]
pub(crate) fn now() -> String {
    let mut date = Vec::new();
    push_now(&mut date);
    String::from_utf8(date).expect("cannot fail: a date is ASCII")
}

/// Appends the current time as an IMF-fixdate to `out` (a response's
/// bytes), without allocating within the same second.
pub(crate) fn push_now(out: &mut Vec<u8>) {
    with_cached(&CACHE, format, |date| {
        out.extend_from_slice(date.as_bytes())
    });
}

/// Appends the current time as the Common Log Format writes it to `out`,
/// without allocating within the same second.
pub(crate) fn push_common_log_now(out: &mut String) {
    with_cached(&COMMON_LOG_CACHE, format_common_log, |time| {
        out.push_str(time);
    });
}

/// Hands the current time, as `format` writes it, to `out`, from the
/// thread's `cache` within the same second.
fn with_cached(
    cache: &'static std::thread::LocalKey<RefCell<Option<Cached>>>,
    format: fn(u64) -> String,
    mut out: impl FnMut(&str),
) {
    let now = SystemTime::now();
    let cached = cache.try_with(|cache| {
        let mut cache = cache.borrow_mut();
        match &*cache {
            // Two comparisons: cheaper than working out the second, which
            // only a new one needs. A clock set back misses too.
            Some(cached) if cached.from <= now && now < cached.until => out(&cached.text),
            _ => {
                let secs = seconds(now);
                let text = format(secs);
                out(&text);
                let from = UNIX_EPOCH + Duration::from_secs(secs);
                // At the end of time, a second that never matches.
                let until = from.checked_add(Duration::from_secs(1)).unwrap_or(from);
                *cache = Some(Cached { from, until, text });
            }
        }
    });
    // `try_with` fails only while the thread is being torn down; the cache
    // is an optimisation, so format afresh then.
    if cached.is_err() {
        out(&format(seconds(now)));
    }
}

/// The whole seconds from the Unix epoch to `time`. A clock set before
/// 1970 is wrong, but not worth failing a response over: say 1970.
fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Formats `secs` seconds after the Unix epoch as an IMF-fixdate.
pub(crate) fn format(secs: u64) -> String {
    let days = secs / 86_400;
    let time = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{weekday}, {day:02} {month} {year:04} {h:02}:{m:02}:{s:02} GMT",
        // The epoch, day 0, was a Thursday: the table starts there.
        weekday = WEEKDAYS[(days % 7) as usize],
        month = MONTHS[(month - 1) as usize],
        h = time / 3600,
        m = time % 3600 / 60,
        s = time % 60,
    )
}

/// Formats `secs` seconds after the Unix epoch as the Common Log Format
/// writes a time, in UTC: `06/Nov/1994:08:49:37 +0000`.
fn format_common_log(secs: u64) -> String {
    let (year, month, day) = civil_from_days(secs / 86_400);
    let time = secs % 86_400;
    format!(
        "{day:02}/{month}/{year:04}:{h:02}:{m:02}:{s:02} +0000",
        month = MONTHS[(month - 1) as usize],
        h = time / 3600,
        m = time % 3600 / 60,
        s = time % 60,
    )
}

/// The Gregorian (year, month 1..=12, day 1..=31) of a day count since
/// 1970-01-01. Howard Hinnant's `civil_from_days`, for days after the
/// epoch: it counts in 400-year eras of 146,097 days starting on 1 March, so
/// that the leap day is the last day of its year and needs no special case.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Shift the epoch to 0000-03-01, the start of an era.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months counted from March: 0 is March, 11 is February.
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Whether `date` has the shape `Sun, 06 Nov 1994 08:49:37 GMT`.
#[cfg(test)]
pub(crate) fn is_imf_fixdate(date: &str) -> bool {
    let b = date.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    date.is_ascii()
        && b.len() == 29
        && WEEKDAYS.contains(&&date[0..3])
        && &date[3..5] == ", "
        && digits(5..7)
        && b[7] == b' '
        && MONTHS.contains(&&date[8..11])
        && b[11] == b' '
        && digits(12..16)
        && b[16] == b' '
        && digits(17..19)
        && b[19] == b':'
        && digits(20..22)
        && b[22] == b':'
        && digits(23..25)
        && &date[25..] == " GMT"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(format(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        // RFC 9110's own example.
        assert_eq!(format(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        // A leap day, in a year divisible by 400.
        assert_eq!(format(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(format(951_868_799), "Tue, 29 Feb 2000 23:59:59 GMT");
        assert_eq!(format(951_868_800), "Wed, 01 Mar 2000 00:00:00 GMT");
        assert_eq!(format(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        assert_eq!(format(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
        assert_eq!(format(1_767_225_599), "Wed, 31 Dec 2025 23:59:59 GMT");
    }

    #[test]
    fn common_log_times() {
        assert_eq!(format_common_log(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(format_common_log(784_111_777), "06/Nov/1994:08:49:37 +0000");
        assert_eq!(format_common_log(951_868_799), "29/Feb/2000:23:59:59 +0000");
    }

    #[test]
    fn now_is_well_formed_and_cached() {
        let first = now();
        assert!(is_imf_fixdate(&first), "{first:?}");
        // Within the same second the cached string comes back; across a
        // second boundary a new one, equally well formed.
        let second = now();
        assert!(is_imf_fixdate(&second), "{second:?}");
    }
}
