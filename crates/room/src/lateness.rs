//! Tick lateness, counted by each mixing thread and handed to the Prometheus histogram
//! (`huddle_mixer_tick_lateness_seconds`) once a second. Recording every room tick straight
//! into the shared histogram made the mixing threads contend for it on every tick.

use std::time::{Duration, Instant};

use metrics::Histogram;

/// Counting resolution. Every bucket bound of the histogram is a multiple of it, so a
/// lateness rounded up to the next step lands in the same bucket: bucket counts stay exact
/// and the sum is overstated by less than one step per tick.
const STEP: Duration = Duration::from_micros(10);

/// Steps counted in the table; later ticks are kept as they are.
const STEPS: usize = 1000;

/// How often the counts are published.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// One mixing thread's lateness counts since the last publication.
pub(crate) struct LatenessTally {
    counts: Vec<u32>,
    beyond: Vec<Duration>,
    histogram: Histogram,
    published: Instant,
}

impl LatenessTally {
    pub(crate) fn new() -> Self {
        LatenessTally {
            counts: vec![0; STEPS + 1],
            beyond: Vec::with_capacity(64),
            histogram: metrics::histogram!("huddle_mixer_tick_lateness_seconds"),
            published: Instant::now(),
        }
    }

    /// Counts one tick that ran `late` after its deadline.
    pub(crate) fn record(&mut self, late: Duration) {
        let step = late.as_nanos().div_ceil(STEP.as_nanos());
        match self.counts.get_mut(step as usize) {
            Some(count) => *count += 1,
            None => self.beyond.push(late),
        }
    }

    /// Publishes the counts when a second has passed since the last time.
    pub(crate) fn publish_if_due(&mut self, now: Instant) {
        if now.saturating_duration_since(self.published) >= PUBLISH_EVERY {
            self.publish();
            self.published = now;
        }
    }

    fn publish(&mut self) {
        for (step, count) in self.counts.iter_mut().enumerate() {
            if *count > 0 {
                let late = STEP * step as u32;
                self.histogram
                    .record_many(late.as_secs_f64(), *count as usize);
                *count = 0;
            }
        }
        for late in self.beyond.drain(..) {
            self.histogram.record(late.as_secs_f64());
        }
    }
}

impl Drop for LatenessTally {
    fn drop(&mut self) {
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_up_keeps_every_bucket_bound() {
        // A lateness at or under a bound stays at or under it; one just over lands past it.
        for bound_us in [100u64, 500, 1000, 2000, 5000] {
            let at = Duration::from_micros(bound_us);
            let step = at.as_nanos().div_ceil(STEP.as_nanos());
            assert_eq!(STEP * step as u32, at);
            let over = at + Duration::from_nanos(1);
            let step = over.as_nanos().div_ceil(STEP.as_nanos());
            assert!(STEP * step as u32 > at);
        }
    }

    #[test]
    fn late_ticks_beyond_the_table_are_kept_exactly() {
        let mut tally = LatenessTally::new();
        tally.record(Duration::from_millis(50));
        tally.record(Duration::from_micros(15));
        assert_eq!(tally.beyond, vec![Duration::from_millis(50)]);
        assert_eq!(tally.counts[2], 1);
        tally.publish();
        assert!(tally.beyond.is_empty());
        assert!(tally.counts.iter().all(|c| *c == 0));
    }
}
