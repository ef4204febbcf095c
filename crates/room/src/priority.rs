//! Scheduling priority of the mixing threads. Every room's 20 ms tick must start within a
//! couple of milliseconds of its deadline even when the machine is busy (with other calls'
//! signalling, with a load generator, with the kernel delivering packets), so the mixing
//! threads ask the kernel to prefer them. Media servers are commonly run this way; without
//! the permission (root or CAP_SYS_NICE) huddle carries on at normal priority.

use std::io;

/// How the mixing threads ask to be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MixerPriority {
    /// Like every other thread.
    Normal,
    /// nice -10: preferred over ordinary work, never starving it.
    #[default]
    High,
    /// SCHED_FIFO at a low real-time priority: ahead of every ordinary thread.
    Realtime,
}

/// The nice value of [`MixerPriority::High`].
const HIGH_NICE: i32 = -10;

/// The SCHED_FIFO priority of [`MixerPriority::Realtime`] (1..=99; low, so that the kernel's
/// own real-time threads still come first).
const REALTIME_PRIORITY: i32 = 10;

/// Applies `priority` to the calling thread; returns what it got, falling back step by step.
pub(crate) fn apply(priority: MixerPriority) -> (MixerPriority, Option<io::Error>) {
    let mut error = None;
    if priority == MixerPriority::Realtime {
        match set_realtime() {
            Ok(()) => return (MixerPriority::Realtime, None),
            Err(e) => error = Some(e),
        }
    }
    if matches!(priority, MixerPriority::High | MixerPriority::Realtime) {
        match set_nice(HIGH_NICE) {
            Ok(()) => return (MixerPriority::High, error),
            Err(e) => error = Some(e),
        }
    }
    (MixerPriority::Normal, error)
}

#[cfg(target_os = "linux")]
fn set_nice(nice: i32) -> io::Result<()> {
    // SAFETY: plain system calls on the calling thread's own id.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(target_os = "linux")]
fn set_realtime() -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: REALTIME_PRIORITY,
    };
    // SAFETY: the calling thread's own handle and a valid sched_param.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

#[cfg(not(target_os = "linux"))]
fn set_nice(_nice: i32) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(not(target_os = "linux"))]
fn set_realtime() -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn current_nice() -> i32 {
        // SAFETY: as above; errno is cleared first because -1 is a valid nice value.
        unsafe {
            *libc::__errno_location() = 0;
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::getpriority(libc::PRIO_PROCESS, tid)
        }
    }

    /// Runs `check` on a thread of its own, so that priorities set by one test do not
    /// leak into the test harness's threads.
    fn on_own_thread(check: impl FnOnce() + Send + 'static) {
        std::thread::spawn(check).join().unwrap();
    }

    #[test]
    fn normal_changes_nothing() {
        on_own_thread(|| {
            let before = current_nice();
            assert_eq!(apply(MixerPriority::Normal).0, MixerPriority::Normal);
            assert_eq!(current_nice(), before);
        });
    }

    #[test]
    fn high_lowers_the_nice_value_or_says_why_not() {
        on_own_thread(|| {
            let (got, error) = apply(MixerPriority::High);
            match got {
                MixerPriority::High => assert_eq!(current_nice(), HIGH_NICE),
                MixerPriority::Normal => {
                    let e = error.expect("a reason when not raised");
                    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
                }
                MixerPriority::Realtime => panic!("asked for high"),
            }
        });
    }

    #[test]
    fn realtime_falls_back_in_order() {
        on_own_thread(|| {
            let (got, error) = apply(MixerPriority::Realtime);
            // SAFETY: reading the calling thread's own policy.
            let policy = unsafe { libc::sched_getscheduler(0) };
            match got {
                MixerPriority::Realtime => assert_eq!(policy, libc::SCHED_FIFO),
                MixerPriority::High => {
                    assert!(error.is_some());
                    assert_eq!(current_nice(), HIGH_NICE);
                }
                MixerPriority::Normal => assert!(error.is_some()),
            }
        });
    }
}
