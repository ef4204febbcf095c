//! A call whose RTP sockets cannot be opened for want of file handles must say so, not blame
//! the port range. Its own test binary: lowering the process's file limit would break tests
//! running beside it.

use std::net::{IpAddr, Ipv4Addr};

use huddle_media::ports::PortAllocator;
use huddle_media::session::{MediaError, MediaSession};

fn nofile() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit
}

fn set_nofile(limit: &libc::rlimit) {
    // SAFETY: setrlimit only reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, limit) }, 0);
}

#[tokio::test]
async fn no_file_handle_left_is_reported_as_such_not_as_no_free_ports() {
    let ports = PortAllocator::new(41_000, 41_100);
    let free = ports.available();
    let before = nofile();
    // Not one handle more than are open now (read_dir's own is closed again by then).
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as libc::rlim_t;
    set_nofile(&libc::rlimit {
        rlim_cur: open - 1,
        rlim_max: before.rlim_max,
    });
    let result = MediaSession::bind(&ports, IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    set_nofile(&before);
    let err = result.err().expect("no socket can be opened");
    match &err {
        MediaError::Io(io) => assert_eq!(io.raw_os_error(), Some(libc::EMFILE), "{io}"),
        other => panic!("reported as {other}"),
    }
    assert!(!err.to_string().contains("no free RTP port"), "{err}");
    // The pair drawn for the attempt went back to the pool.
    assert_eq!(ports.available(), free);
    // With handles again, the same pool serves.
    assert!(MediaSession::bind(&ports, IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .is_ok());
}
