//! From an i32 sum to an i16 sample without wrap-around or a hard clip's harshness.

/// Up to this magnitude (75 % of full scale) samples pass unchanged.
pub(crate) const KNEE: u32 = 24_576;
/// Headroom above the knee: the curve approaches `KNEE + ROOM` = 32,767.
const ROOM: u64 = 32_767 - KNEE as u64;

/// Linear up to the knee, then `knee + e·R/(e+R)` for an excess `e` over it, with
/// `R = 32767 - knee`: slope 1 at the knee (continuous, no audible corner), approaching full
/// scale without reaching it (at most ±32,766, so it never wraps and stays symmetric), and
/// monotonic over the whole i32 range. The integer division floors, so adjacent inputs never
/// differ by more than one output step. One division only for the rare loud sample.
#[inline]
pub fn soft_limit(sample: i32) -> i16 {
    let magnitude = sample.unsigned_abs();
    if magnitude <= KNEE {
        return sample as i16;
    }
    let excess = u64::from(magnitude - KNEE);
    // < KNEE + ROOM = 32,767, so the cast is exact.
    let limited = (u64::from(KNEE) + excess * ROOM / (excess + ROOM)) as i16;
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
        let knee = KNEE as i32;
        for s in -knee..=knee {
            assert_eq!(i32::from(soft_limit(s)), s);
        }
        assert_eq!(soft_limit(knee + 1), KNEE as i16, "no step at the knee");
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
