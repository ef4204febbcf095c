//! When a status or recording callback that could not be delivered is tried again.
//!
//! The URL's own fragment options (`#rc`, `#rp`) make Plivo's immediate retries inside one
//! delivery round. When a whole round fails for a reason that may pass (the receiver refuses
//! connections, times out, answers 429 or 5xx), the callback stays at the head of its MPC's
//! queue and a new round starts after an exponentially growing, fully jittered delay, until a
//! horizon measured from when the callback was queued. Everything here is sans-IO: the clock
//! and the random draw are passed in, so the schedule is tested on simulated time.

use std::time::{Duration, SystemTime};

/// The outage backoff: round `n` (counting failed rounds from 1) is followed by a delay drawn
/// uniformly from `[0, min(max, initial × 2^(n−1))]` ("full jitter", which spreads the retries
/// of many callbacks that failed together instead of sending them back in a herd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// Ceiling of the delay after the first failed round.
    pub initial: Duration,
    /// Largest delay between two rounds (a Retry-After beyond it is cut to it).
    pub max: Duration,
    /// How long after it was queued a callback is still tried; zero disables outage retries.
    pub horizon: Duration,
}

impl Default for RetrySchedule {
    /// The configuration's defaults: 1 s doubling up to 5 min, for an hour.
    fn default() -> Self {
        RetrySchedule {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
            horizon: Duration::from_secs(3600),
        }
    }
}

/// What to do after a failed round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Start the next round after this delay.
    RetryIn(Duration),
    /// The horizon has passed: give the callback up.
    GiveUp,
}

impl RetrySchedule {
    /// No rounds after the first (the URL's own retries only).
    pub fn disabled() -> Self {
        RetrySchedule {
            horizon: Duration::ZERO,
            ..RetrySchedule::default()
        }
    }

    /// The largest delay after failed round `round` (from 1): `min(max, initial × 2^(round−1))`.
    pub fn ceiling(&self, round: u32) -> Duration {
        let doublings = round.saturating_sub(1).min(63);
        let factor = 1u64 << doublings;
        let nanos = (self.initial.as_nanos()).saturating_mul(u128::from(factor));
        let max = self.max.as_nanos();
        Duration::from_nanos(nanos.min(max).min(u128::from(u64::MAX)) as u64)
    }

    /// Decides after failed round `round` (from 1) of a callback queued at `queued_at`, at
    /// `now`. `jitter` is a uniform draw from `[0, 1]`; `retry_after` is the receiver's
    /// Retry-After, honoured up to `max`. The next round never starts after the horizon: the
    /// delay is cut so that the last round falls on it.
    pub fn after_failure(
        &self,
        round: u32,
        queued_at: SystemTime,
        now: SystemTime,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Next {
        // A clock set back since the callback was queued counts as no time passed.
        let elapsed = now.duration_since(queued_at).unwrap_or(Duration::ZERO);
        let Some(left) = self.horizon.checked_sub(elapsed).filter(|l| !l.is_zero()) else {
            return Next::GiveUp;
        };
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let mut delay = self.ceiling(round).mul_f64(jitter);
        if let Some(asked) = retry_after {
            delay = delay.max(asked.min(self.max));
        }
        Next::RetryIn(delay.min(left))
    }
}

/// Reads a Retry-After value (RFC 9110 §10.2.3): delay seconds or an HTTP date, which counts
/// from `now`. A date in the past means no wait; anything unreadable is ignored.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A uniform draw from `[0, 1)` from the operating system's randomness (0.5 should it fail:
/// half the ceiling is still a backoff).
pub fn draw_jitter() -> f64 {
    match getrandom::u64() {
        Ok(bits) => (bits >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn schedule() -> RetrySchedule {
        RetrySchedule {
            initial: 100 * MS,
            max: Duration::from_secs(2),
            horizon: Duration::from_secs(60),
        }
    }

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
    }

    fn delay(next: Next) -> Duration {
        match next {
            Next::RetryIn(d) => d,
            Next::GiveUp => panic!("given up"),
        }
    }

    #[test]
    fn ceilings_double_from_the_initial_delay_up_to_the_cap() {
        let s = schedule();
        let ceilings: Vec<u128> = (1..=8).map(|r| s.ceiling(r).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        // No overflow however many rounds have failed.
        assert_eq!(s.ceiling(u32::MAX), Duration::from_secs(2));
        assert_eq!(s.ceiling(0), 100 * MS);
    }

    #[test]
    fn the_delay_is_drawn_between_zero_and_the_ceiling() {
        let s = schedule();
        for round in 1..=10 {
            let ceiling = s.ceiling(round);
            assert_eq!(
                delay(s.after_failure(round, at(0), at(0), None, 0.0)),
                Duration::ZERO
            );
            assert_eq!(
                delay(s.after_failure(round, at(0), at(0), None, 1.0)),
                ceiling
            );
            let half = delay(s.after_failure(round, at(0), at(0), None, 0.5));
            assert_eq!(half, ceiling / 2, "round {round}");
        }
        // A draw outside [0, 1] cannot push the delay outside the bounds.
        assert_eq!(delay(s.after_failure(3, at(0), at(0), None, 7.0)), 400 * MS);
        assert_eq!(
            delay(s.after_failure(3, at(0), at(0), None, -1.0)),
            Duration::ZERO
        );
        assert_eq!(
            delay(s.after_failure(3, at(0), at(0), None, f64::NAN)),
            200 * MS
        );
    }

    #[test]
    fn simulated_outage_spacing_doubles_within_jitter_bounds_until_the_horizon() {
        let s = schedule();
        // A cheap deterministic stand-in for the random draw.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut draw = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let queued = at(0);
        let mut now = queued;
        let mut delays = Vec::new();
        let mut round = 0;
        loop {
            round += 1;
            match s.after_failure(round, queued, now, None, draw()) {
                Next::RetryIn(d) => {
                    assert!(d <= s.ceiling(round), "round {round}: {d:?}");
                    delays.push(d);
                    now += d;
                }
                Next::GiveUp => break,
            }
        }
        assert_eq!(
            now,
            queued + s.horizon,
            "the last round falls on the horizon"
        );
        // Capped delays average half the cap: about 60 rounds in a minute, not 600.
        assert!((40..=90).contains(&delays.len()), "{} rounds", delays.len());
        let late: Duration = delays[10..30].iter().sum();
        let early: Duration = delays[..4].iter().sum();
        assert!(late / 20 > early / 4, "later gaps are longer on average");
    }

    #[test]
    fn past_the_horizon_the_callback_is_given_up() {
        let s = schedule();
        assert_eq!(
            s.after_failure(1, at(0), at(60_000), None, 0.5),
            Next::GiveUp
        );
        assert_eq!(
            s.after_failure(1, at(0), at(90_000), None, 0.5),
            Next::GiveUp
        );
        // Just before it, the delay is cut to what is left.
        assert_eq!(
            delay(s.after_failure(9, at(0), at(59_900), None, 1.0)),
            100 * MS
        );
        // The horizon counts from queueing, whatever the round (a restart keeps both).
        assert_eq!(
            s.after_failure(2, at(0), at(61_000), None, 0.0),
            Next::GiveUp
        );
        // A clock set back counts as no time passed.
        assert_eq!(
            delay(s.after_failure(1, at(5_000), at(0), None, 1.0)),
            100 * MS
        );
        let off = RetrySchedule::disabled();
        assert_eq!(off.after_failure(1, at(0), at(0), None, 0.5), Next::GiveUp);
    }

    #[test]
    fn retry_after_is_honoured_within_the_cap() {
        let s = schedule();
        let asked = Some(Duration::from_secs(1));
        assert_eq!(
            delay(s.after_failure(1, at(0), at(0), asked, 0.0)),
            Duration::from_secs(1)
        );
        // A longer jittered delay stands.
        let long = delay(s.after_failure(6, at(0), at(0), Some(MS), 1.0));
        assert_eq!(long, Duration::from_secs(2));
        // Beyond the cap it is cut to the cap, and never past the horizon.
        let huge = Some(Duration::from_secs(3600));
        assert_eq!(
            delay(s.after_failure(1, at(0), at(0), huge, 0.0)),
            Duration::from_secs(2)
        );
        assert_eq!(
            delay(s.after_failure(1, at(0), at(59_000), huge, 0.0)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        // 2015-10-21 07:28:00 is 1_445_412_480; this date is 30 s later.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        for junk in ["", "-5", "soon", "1.5", "99999999999999999999999"] {
            assert_eq!(parse_retry_after(junk, now), None, "{junk:?}");
        }
    }

    #[test]
    fn jitter_draws_stay_in_the_unit_interval() {
        for _ in 0..1000 {
            let j = draw_jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }
}
