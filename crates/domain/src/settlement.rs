use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use std::fmt;

use crate::Channel;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettlementError {
    #[error("day cut-off must be HH:MM between 00:00 and 24:00, got {0:?}")]
    CutOff(String),
    #[error("unknown time zone {0:?} (use an IANA name such as Asia/Shanghai)")]
    TimeZone(String),
    #[error("settlement date must be YYYY-MM-DD, got {0:?}")]
    Date(String),
}

/// 清算日期: the business day a transaction settles in, which is not always its calendar day.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SettlementDate(NaiveDate);

impl SettlementDate {
    pub fn new(d: NaiveDate) -> Self {
        SettlementDate(d)
    }

    pub fn parse(s: &str) -> Result<Self, SettlementError> {
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map(SettlementDate)
            .map_err(|_| SettlementError::Date(s.to_owned()))
    }

    pub fn date(self) -> NaiveDate {
        self.0
    }

    pub fn succ(self) -> Self {
        SettlementDate(self.0 + Duration::days(1))
    }

    pub fn pred(self) -> Self {
        SettlementDate(self.0 - Duration::days(1))
    }

    /// `MMDD`, as field 15 carries it.
    pub fn mmdd(self) -> String {
        format!("{:02}{:02}", self.0.month(), self.0.day())
    }
}

impl fmt::Display for SettlementDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By hand rather than through strftime: this runs once per exported row.
        write!(f, "{:04}-{:02}-{:02}", self.0.year(), self.0.month(), self.0.day())
    }
}

impl fmt::Debug for SettlementDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SettlementDate({self})")
    }
}

/// A day cut-off as minutes after local midnight; `24:00` (1440) means the natural day.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CutOff(u16);

impl CutOff {
    pub const DEFAULT: CutOff = CutOff(23 * 60);
    pub const NATURAL_DAY: CutOff = CutOff(24 * 60);

    pub fn parse(s: &str) -> Result<CutOff, SettlementError> {
        let bad = || SettlementError::CutOff(s.to_owned());
        let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if m > 59 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(CutOff(h * 60 + m))
    }

    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl fmt::Display for CutOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl fmt::Debug for CutOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CutOff({self})")
    }
}

/// A merchant's time zone and day cut-off: everything needed to turn an instant into a local
/// time and a settlement date.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MerchantClock {
    pub tz: Tz,
    pub cutoff: CutOff,
}

impl Default for MerchantClock {
    fn default() -> Self {
        MerchantClock { tz: chrono_tz::Asia::Shanghai, cutoff: CutOff::DEFAULT }
    }
}

impl MerchantClock {
    pub fn new(tz_name: &str, cutoff: &str) -> Result<MerchantClock, SettlementError> {
        let tz: Tz = tz_name.parse().map_err(|_| SettlementError::TimeZone(tz_name.to_owned()))?;
        Ok(MerchantClock { tz, cutoff: CutOff::parse(cutoff)? })
    }

    /// The cut-off that applies to a channel: card and UnionPay QR use the merchant's; WeChat Pay
    /// and Alipay bills cover the natural day.
    pub fn cutoff_for(&self, channel: Channel) -> CutOff {
        match channel {
            Channel::Card | Channel::UnionpayQr => self.cutoff,
            Channel::Wechat | Channel::Alipay => CutOff::NATURAL_DAY,
        }
    }

    pub fn local(&self, instant: DateTime<Utc>) -> DateTime<Tz> {
        instant.with_timezone(&self.tz)
    }

    /// A transaction at or after the cut-off (local time) belongs to the next settlement date.
    pub fn settlement_date(&self, instant: DateTime<Utc>, channel: Channel) -> SettlementDate {
        let local = self.local(instant);
        let minute_of_day = (local.hour() * 60 + local.minute()) as u16;
        let date = local.date_naive();
        if minute_of_day >= self.cutoff_for(channel).minutes() {
            SettlementDate(date + Duration::days(1))
        } else {
            SettlementDate(date)
        }
    }

    /// The first instant of a local calendar day. On a day whose midnight does not exist (a
    /// DST gap) this is the first instant that does.
    pub fn start_of_day(&self, date: NaiveDate) -> DateTime<Utc> {
        self.local_instant(date, 0)
    }

    /// The instants `[start, end)` whose settlement date is `date` for `channel`.
    pub fn settlement_window(&self, date: SettlementDate, channel: Channel) -> (DateTime<Utc>, DateTime<Utc>) {
        let cut = self.cutoff_for(channel).minutes();
        let start = self.local_instant(date.0 - Duration::days(1), cut);
        let end = self.local_instant(date.0, cut);
        (start, end)
    }

    fn local_instant(&self, date: NaiveDate, minute_of_day: u16) -> DateTime<Utc> {
        let (date, minute_of_day) =
            if minute_of_day >= 1440 { (date + Duration::days(1), minute_of_day - 1440) } else { (date, minute_of_day) };
        let t = NaiveTime::from_hms_opt(u32::from(minute_of_day / 60), u32::from(minute_of_day % 60), 0)
            .expect("minute of day below 1440");
        let mut naive = date.and_time(t);
        // Walk forward out of a DST gap; at most a few hours exist in any zone.
        for _ in 0..(4 * 60) {
            if let Some(dt) = self.tz.from_local_datetime(&naive).earliest() {
                return dt.with_timezone(&Utc);
            }
            naive += Duration::minutes(1);
        }
        Utc.from_utc_datetime(&naive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn check(instant: &str, channel: Channel, expected: &str) {
        let clock = MerchantClock::default();
        assert_eq!(clock.settlement_date(at(instant), channel).to_string(), expected, "{instant} {channel:?}");
    }

    #[test]
    fn cut_off_and_midnight_in_shanghai() {
        check("2026-11-24T22:59:59+08:00", Channel::Card, "2026-11-24");
        check("2026-11-24T23:00:00+08:00", Channel::Card, "2026-11-25");
        check("2026-11-24T23:59:59+08:00", Channel::Card, "2026-11-25");
        check("2026-11-25T00:00:00+08:00", Channel::Card, "2026-11-25");
        check("2026-11-24T23:30:00+08:00", Channel::UnionpayQr, "2026-11-25");
        check("2026-11-24T23:30:00+08:00", Channel::Wechat, "2026-11-24");
        check("2026-11-24T23:59:59+08:00", Channel::Alipay, "2026-11-24");
        // 15:00 UTC is 23:00 in Shanghai: the UTC date is not the business date.
        check("2026-11-24T15:00:00Z", Channel::Card, "2026-11-25");
        check("2026-12-31T23:00:00+08:00", Channel::Card, "2027-01-01");
    }

    #[test]
    fn cut_off_parsing() {
        assert_eq!(CutOff::parse("23:00").unwrap(), CutOff::DEFAULT);
        assert_eq!(CutOff::parse("24:00").unwrap(), CutOff::NATURAL_DAY);
        for bad in ["24:01", "7:00", "23:60", "2300", "", "aa:bb"] {
            assert!(CutOff::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn zone_with_daylight_saving() {
        let clock = MerchantClock::new("America/New_York", "23:00").unwrap();
        // 2026-03-08: clocks jump 02:00 -> 03:00; the day still starts at local midnight.
        let d = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        assert_eq!(clock.start_of_day(d), at("2026-03-08T05:00:00Z"));
        assert_eq!(clock.settlement_date(at("2026-03-09T03:30:00Z"), Channel::Card).to_string(), "2026-03-09");
        assert!(MerchantClock::new("Mars/Olympus", "23:00").is_err());
    }

    proptest! {
        #[test]
        fn settlement_date_is_local_date_or_next(secs in 1_600_000_000i64..2_000_000_000, cut in 0u16..=1440,
                                                  ch in prop::sample::select(vec![Channel::Card, Channel::Wechat])) {
            let clock = MerchantClock { tz: chrono_tz::Asia::Shanghai, cutoff: CutOff(cut) };
            let t = DateTime::from_timestamp(secs, 0).unwrap();
            let local = clock.local(t);
            let d = clock.settlement_date(t, ch);
            let m = (local.hour() * 60 + local.minute()) as u16;
            let expect_next = m >= clock.cutoff_for(ch).minutes();
            prop_assert_eq!(d.date() == local.date_naive() + Duration::days(1), expect_next);
            prop_assert_eq!(d.date() == local.date_naive(), !expect_next);
            // The window of that date contains the instant.
            let (s, e) = clock.settlement_window(d, ch);
            prop_assert!(s <= t && t < e, "{} not in [{}, {})", t, s, e);
        }
    }
}
