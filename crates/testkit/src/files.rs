//! The test process's own file handles, for tests that open thousands of connections.

/// Raises this process's RLIMIT_NOFILE towards `want`: both limits to `want` where allowed
/// (root may raise the hard limit), else the soft limit to the hard one. Servers started
/// afterwards inherit the new limit. Returns the soft limit now in force.
// rlim_t is u64 on 64-bit Linux but not on every target: the casts stay.
#[allow(clippy::unnecessary_cast)]
pub fn raise_open_file_limit(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    let want = want as libc::rlim_t;
    if limit.rlim_cur >= want {
        return limit.rlim_cur as u64;
    }
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: limit.rlim_max.max(want),
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return want as u64;
    }
    let soft = libc::rlimit {
        rlim_cur: limit.rlim_max,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } == 0 {
        return limit.rlim_max as u64;
    }
    limit.rlim_cur as u64
}

/// File handles this process has open now (entries of `/proc/self/fd`), 0 where that cannot
/// be read.
pub fn open_files() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}
