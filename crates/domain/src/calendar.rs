//! Days in the tenant's time zone (Asia/Shanghai by default), as numbers: day 0 is 1970-01-01
//! there. RFM, lifecycle and "within N days" rules count these days.

use crate::Millis;
use crate::loyalty::TENANT_TZ;
use jiff::tz::TimeZone;
use std::sync::OnceLock;

const DAY_MS: i64 = 86_400_000;

fn zone() -> &'static TimeZone {
    static ZONE: OnceLock<TimeZone> = OnceLock::new();
    ZONE.get_or_init(|| TimeZone::get(TENANT_TZ).unwrap_or(TimeZone::UTC))
}

/// The tenant's day number of an instant.
pub fn day_of(at: Millis) -> i32 {
    let offset_ms =
        jiff::Timestamp::from_millisecond(at).map(|t| i64::from(zone().to_offset(t).seconds()) * 1000).unwrap_or(0);
    (at + offset_ms).div_euclid(DAY_MS) as i32
}

/// The calendar date of a day number.
pub fn date_of(day: i32) -> jiff::civil::Date {
    let epoch = jiff::civil::date(1970, 1, 1);
    epoch.checked_add(jiff::Span::new().days(i64::from(day))).unwrap_or(epoch)
}

/// The day number of a calendar date.
pub fn day_of_date(date: jiff::civil::Date) -> i32 {
    let epoch = jiff::civil::date(1970, 1, 1);
    date.since((jiff::Unit::Day, epoch)).map(|s| s.get_days()).unwrap_or(0)
}

/// The first instant of a day in the tenant's zone.
pub fn start_of(day: i32) -> Millis {
    date_of(day)
        .at(0, 0, 0, 0)
        .to_zoned(zone().clone())
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(i64::from(day) * DAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_turn_at_midnight_in_shanghai() {
        // 2026-01-01T00:00:00+08:00 is 2025-12-31T16:00:00Z.
        let midnight = 1_767_196_800_000;
        let day = day_of(midnight);
        assert_eq!(date_of(day).to_string(), "2026-01-01");
        assert_eq!(day_of(midnight - 1), day - 1);
        assert_eq!(start_of(day), midnight);
        assert_eq!(day_of_date(date_of(day)), day);
    }
}
