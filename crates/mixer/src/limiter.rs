//! From an i32 sum to an i16 sample without wrap-around or a hard clip's harshness.

/// Below this magnitude samples pass unchanged.
const KNEE: i32 = 24_576;
/// Headroom above the knee.
const ROOM: i64 = 32_767 - KNEE as i64;

/// Linear up to the knee (75 % of full scale), then `knee + e·R/(e+R)` for an excess `e`, which
/// approaches full scale but never reaches it: monotonic, continuous, symmetric, and one
/// division only for the rare loud samples.
#[inline]
pub fn soft_limit(sample: i32) -> i16 {
    if (-KNEE..=KNEE).contains(&sample) {
        return sample as i16;
    }
    let magnitude = i64::from(sample).abs();
    let excess = magnitude - i64::from(KNEE);
    let limited = i64::from(KNEE) + excess * ROOM / (excess + ROOM);
    let limited = limited.min(32_767) as i16;
    if sample < 0 {
        -limited
    } else {
        limited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_below_the_knee_and_bounded_above() {
        for s in [-KNEE, -1000, 0, 1, 1000, KNEE] {
            assert_eq!(i32::from(soft_limit(s)), s);
        }
        assert!(soft_limit(i32::MAX) > 32_000);
        assert!(soft_limit(i32::MIN) > -32_768 && soft_limit(i32::MIN) < -32_000);
        assert_eq!(soft_limit(10 * 32_767), -soft_limit(-10 * 32_767));
    }

    #[test]
    fn monotonic_and_continuous() {
        let mut last = soft_limit(-16 * 32_768);
        for s in (-16 * 32_768)..=(16 * 32_768) {
            let y = soft_limit(s);
            assert!(y >= last, "not monotonic at {s}");
            assert!(i32::from(y) - i32::from(last) <= 1, "jump at {s}");
            last = y;
        }
    }
}
