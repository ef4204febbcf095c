//! The list-MPCs filters (mpc-api.md §5.1): name, status, termination cause, account, and
//! creation or end time bounds written `YYYY-MM-DD HH:MM[:ss[.ffffff]]` (UTC).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use huddle_room::MpcSnapshot;

use super::request::bad;
use super::ApiError;

/// A time bound's comparison.
#[derive(Debug, Clone, Copy)]
enum Bound {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Bound {
    fn holds(self, value: SystemTime, limit: SystemTime) -> bool {
        match self {
            Bound::Gt => value > limit,
            Bound::Gte => value >= limit,
            Bound::Lt => value < limit,
            Bound::Lte => value <= limit,
        }
    }
}

/// Which time a bound applies to.
#[derive(Debug, Clone, Copy)]
enum Field {
    Creation,
    End,
}

/// The parsed filters of one list request.
#[derive(Debug, Default)]
pub struct MpcFilter {
    friendly_name: Option<String>,
    status: Option<String>,
    termination_cause_code: Option<u16>,
    sub_account: bool,
    times: Vec<(Field, Bound, SystemTime)>,
}

impl MpcFilter {
    /// Reads the filters; a malformed value is a 400 naming it. Unknown keys are ignored.
    pub fn parse(query: &[(String, String)]) -> Result<MpcFilter, ApiError> {
        let mut filter = MpcFilter::default();
        for (key, value) in query {
            match key.as_str() {
                "friendly_name" => filter.friendly_name = Some(value.clone()),
                "status" => {
                    let status = value.to_ascii_lowercase();
                    if !["initialized", "active", "ended"].contains(&status.as_str()) {
                        return Err(bad(&format!(
                            "status must be initialized, active or ended, not {value:?}"
                        )));
                    }
                    filter.status = Some(status);
                }
                "termination_cause_code" => {
                    let code = value
                        .parse::<u16>()
                        .ok()
                        .filter(|c| [1000, 1010, 2000, 3000, 5100].contains(c))
                        .ok_or_else(|| {
                            bad(&format!(
                                "termination_cause_code must be 1000, 1010, 2000, 3000 or 5100, not {value:?}"
                            ))
                        })?;
                    filter.termination_cause_code = Some(code);
                }
                "sub_account" => {
                    let valid = value.len() == 20
                        && value.starts_with("SA")
                        && value[2..]
                            .bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
                    if !valid {
                        return Err(bad(&format!(
                            "sub_account is not a sub-account id: {value:?}"
                        )));
                    }
                    // This server has no sub-accounts: nothing belongs to one.
                    filter.sub_account = true;
                }
                _ => {
                    if let Some((field, bound)) = time_key(key) {
                        let at = parse_time(value).ok_or_else(|| {
                            bad(&format!(
                                "{key} must be YYYY-MM-DD HH:MM[:ss[.ffffff]], not {value:?}"
                            ))
                        })?;
                        filter.times.push((field, bound, at));
                    }
                }
            }
        }
        Ok(filter)
    }

    /// Whether `mpc` passes every filter.
    pub fn matches(&self, mpc: &MpcSnapshot) -> bool {
        if self.sub_account {
            return false;
        }
        if self.friendly_name.as_ref().is_some_and(|n| *n != mpc.name) {
            return false;
        }
        if self
            .status
            .as_ref()
            .is_some_and(|s| !s.eq_ignore_ascii_case(mpc.status.as_str()))
        {
            return false;
        }
        if let Some(code) = self.termination_cause_code {
            if mpc.termination.map(|c| c.code()) != Some(code) {
                return false;
            }
        }
        self.times.iter().all(|(field, bound, limit)| {
            let value = match field {
                Field::Creation => Some(mpc.created),
                Field::End => mpc.ended,
            };
            value.is_some_and(|v| bound.holds(v, *limit))
        })
    }
}

fn time_key(key: &str) -> Option<(Field, Bound)> {
    let (field, bound) = key.split_once("__")?;
    let field = match field {
        "creation_time" => Field::Creation,
        "end_time" => Field::End,
        _ => return None,
    };
    let bound = match bound {
        "gt" => Bound::Gt,
        "gte" => Bound::Gte,
        "lt" => Bound::Lt,
        "lte" => Bound::Lte,
        _ => return None,
    };
    Some((field, bound))
}

/// `YYYY-MM-DD HH:MM[:ss[.ffffff]]` in UTC.
fn parse_time(s: &str) -> Option<SystemTime> {
    let (date, clock) = s.trim().split_once(' ')?;
    let mut date_parts = date.split('-');
    let year: i64 = fixed(date_parts.next()?, 4)?;
    let month: u32 = fixed(date_parts.next()?, 2)?;
    let day: u32 = fixed(date_parts.next()?, 2)?;
    if date_parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (hms, micros) = match clock.split_once('.') {
        Some((hms, frac)) if (1..=6).contains(&frac.len()) => {
            let digits: u32 = fixed(frac, frac.len())?;
            (hms, digits * 10u32.pow(6 - frac.len() as u32))
        }
        Some(_) => return None,
        None => (clock, 0),
    };
    let mut clock_parts = hms.split(':');
    let hour: u64 = fixed(clock_parts.next()?, 2)?;
    let minute: u64 = fixed(clock_parts.next()?, 2)?;
    let second: u64 = match clock_parts.next() {
        Some(s) => fixed(s, 2)?,
        None if micros == 0 => 0,
        None => return None,
    };
    if clock_parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(u64::from(micros)))
}

/// Exactly `len` ASCII digits.
fn fixed<T: std::str::FromStr>(s: &str, len: usize) -> Option<T> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Option<u64> {
        parse_time(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs())
    }

    #[test]
    fn times_in_every_allowed_precision() {
        assert_eq!(secs("1970-01-01 00:00"), Some(0));
        assert_eq!(secs("2025-01-30 14:05:09"), Some(1_738_245_909));
        assert_eq!(secs("2000-02-29 00:00:00"), Some(951_782_400));
        let micro = parse_time("2025-01-30 14:05:09.5").unwrap();
        assert_eq!(
            micro.duration_since(UNIX_EPOCH).unwrap().subsec_micros(),
            500_000
        );
    }

    #[test]
    fn malformed_times_are_refused() {
        for bad_time in [
            "",
            "2025-01-30",
            "2025-1-30 14:05",
            "2025-13-01 00:00",
            "2025-01-30 24:00",
            "2025-01-30 14:05:09.1234567",
            "2025-01-30T14:05:09",
            "2025-01-30 14:05:09:01",
            "２０２５-01-30 14:05",
        ] {
            assert!(parse_time(bad_time).is_none(), "{bad_time:?}");
        }
    }

    #[test]
    fn filter_values_are_checked() {
        let q = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(MpcFilter::parse(&q("status", "Active")).is_ok());
        assert!(MpcFilter::parse(&q("status", "running")).is_err());
        assert!(MpcFilter::parse(&q("termination_cause_code", "1010")).is_ok());
        assert!(MpcFilter::parse(&q("termination_cause_code", "42")).is_err());
        assert!(MpcFilter::parse(&q("sub_account", "SA0123456789ABCDEFGH")).is_ok());
        assert!(MpcFilter::parse(&q("sub_account", "MA0123456789ABCDEFGH")).is_err());
        assert!(MpcFilter::parse(&q("end_time__gte", "2020-03-10 11:45")).is_ok());
        assert!(MpcFilter::parse(&q("end_time__gte", "yesterday")).is_err());
        assert!(MpcFilter::parse(&q("unknown", "whatever")).is_ok());
    }
}
