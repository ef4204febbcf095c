//! Draining a UDP socket in one system call, with the kernel's arrival time of each datagram.
//!
//! A leg's tick reads whatever arrived in the last 20 ms: usually one packet, sometimes none
//! or a few. A `recv_from` loop needs one call per packet plus one that says "nothing more";
//! `recvmmsg` with `MSG_DONTWAIT` returns them all in one. The socket is also asked for
//! `SO_TIMESTAMPNS`, because the tick reads packets up to 20 ms after they arrived and the
//! RFC 3550 interarrival jitter must be computed from when they really arrived. No crate wraps
//! `recvmmsg` with control messages without allocating per call, hence the `libc` calls; this
//! is the hottest receive path in the server and is kept small.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Datagrams read per call; a leg rarely has more than two waiting.
pub const BATCH: usize = 8;

/// Room for one datagram. RTP over UDP stays under the Ethernet MTU; a longer datagram is
/// reported as truncated.
pub const DATAGRAM_MAX: usize = 2048;

/// One datagram of a batch.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    /// Its bytes; empty when it was truncated.
    pub data: &'a [u8],
    /// It did not fit in [`DATAGRAM_MAX`] bytes.
    pub truncated: bool,
    /// The sender.
    pub source: SocketAddr,
    /// When the kernel received it (since the Unix epoch), when the socket reported it.
    pub arrival: Option<Duration>,
}

/// Asks the kernel to stamp each datagram's arrival time. Without it (an old kernel) the
/// caller falls back to the time it read the datagram.
pub fn enable_arrival_timestamps(socket: &UdpSocket) -> io::Result<()> {
    imp::enable_arrival_timestamps(socket)
}

/// Buffers for one batch, reused for every call (one per thread is enough).
pub struct RecvBatch {
    inner: imp::Batch,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            inner: imp::Batch::new(),
        }
    }
}

impl RecvBatch {
    /// Reads up to [`BATCH`] waiting datagrams without blocking; 0 when none is waiting.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.inner.recv(socket)
    }

    /// Datagram `i` of the last [`RecvBatch::recv`].
    pub fn get(&self, i: usize) -> Option<Datagram<'_>> {
        self.inner.get(i)
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::mem::{size_of, zeroed};
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use super::{Datagram, BATCH, DATAGRAM_MAX};

    /// Control-message space per datagram: one `timespec`, 8-byte aligned.
    const CONTROL_WORDS: usize = 8;

    pub(super) fn enable_arrival_timestamps(socket: &UdpSocket) -> io::Result<()> {
        let on: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a c_int option value of the stated length.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub(super) struct Batch {
        buffers: Box<[[u8; DATAGRAM_MAX]; BATCH]>,
        names: Box<[libc::sockaddr_storage; BATCH]>,
        controls: Box<[[u64; CONTROL_WORDS]; BATCH]>,
        iovecs: [libc::iovec; BATCH],
        headers: [libc::mmsghdr; BATCH],
        received: usize,
    }

    // SAFETY: the raw pointers in `iovecs` and `headers` only ever point into this batch's own
    // boxed buffers and are rewritten before each use; nothing is shared across threads.
    unsafe impl Send for Batch {}

    impl Batch {
        pub(super) fn new() -> Self {
            Batch {
                buffers: Box::new([[0; DATAGRAM_MAX]; BATCH]),
                // SAFETY: all-zero is a valid sockaddr_storage, iovec and mmsghdr (null
                // pointers, zero lengths).
                names: Box::new(unsafe { zeroed() }),
                controls: Box::new([[0; CONTROL_WORDS]; BATCH]),
                iovecs: unsafe { zeroed() },
                headers: unsafe { zeroed() },
                received: 0,
            }
        }

        pub(super) fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
            self.received = 0;
            for i in 0..BATCH {
                self.iovecs[i] = libc::iovec {
                    iov_base: self.buffers[i].as_mut_ptr().cast(),
                    iov_len: DATAGRAM_MAX,
                };
                let header = &mut self.headers[i];
                header.msg_len = 0;
                header.msg_hdr.msg_name =
                    (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
                header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                header.msg_hdr.msg_iov = &mut self.iovecs[i];
                header.msg_hdr.msg_iovlen = 1;
                header.msg_hdr.msg_control = self.controls[i].as_mut_ptr().cast();
                header.msg_hdr.msg_controllen = size_of::<[u64; CONTROL_WORDS]>() as _;
                header.msg_hdr.msg_flags = 0;
            }
            // SAFETY: every header points at live buffers of this batch with the lengths given;
            // the kernel writes at most that much into each.
            let n = unsafe {
                libc::recvmmsg(
                    socket.as_raw_fd(),
                    self.headers.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                return if err.kind() == io::ErrorKind::WouldBlock {
                    Ok(0)
                } else {
                    Err(err)
                };
            }
            self.received = n as usize;
            Ok(self.received)
        }

        pub(super) fn get(&self, i: usize) -> Option<Datagram<'_>> {
            if i >= self.received {
                return None;
            }
            let header = &self.headers[i].msg_hdr;
            let truncated = header.msg_flags & libc::MSG_TRUNC != 0;
            let len = (self.headers[i].msg_len as usize).min(DATAGRAM_MAX);
            Some(Datagram {
                data: if truncated {
                    &[]
                } else {
                    &self.buffers[i][..len]
                },
                truncated,
                source: socket_addr(&self.names[i])?,
                arrival: arrival_of(header),
            })
        }
    }

    fn socket_addr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match i32::from(storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in, which it can contain.
                let v4: libc::sockaddr_in = unsafe {
                    std::ptr::read_unaligned((storage as *const libc::sockaddr_storage).cast())
                };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                    u16::from_be(v4.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for sockaddr_in6.
                let v6: libc::sockaddr_in6 = unsafe {
                    std::ptr::read_unaligned((storage as *const libc::sockaddr_storage).cast())
                };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(v6.sin6_addr.s6_addr),
                    u16::from_be(v6.sin6_port),
                    v6.sin6_flowinfo,
                    v6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    fn arrival_of(header: &libc::msghdr) -> Option<Duration> {
        // SAFETY: the kernel filled msg_control/msg_controllen for this header; the CMSG_*
        // helpers stay within msg_controllen, and the timestamp is read unaligned.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(header);
            while !cmsg.is_null() {
                let c = &*cmsg;
                if c.cmsg_level == libc::SOL_SOCKET && c.cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                    return Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
                }
                cmsg = libc::CMSG_NXTHDR(header, cmsg);
            }
        }
        None
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::net::{SocketAddr, UdpSocket};

    use super::{Datagram, BATCH, DATAGRAM_MAX};

    pub(super) fn enable_arrival_timestamps(_socket: &UdpSocket) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// Portable fallback: one `recv_from` per datagram.
    pub(super) struct Batch {
        buffers: Box<[[u8; DATAGRAM_MAX]; BATCH]>,
        meta: [(usize, Option<SocketAddr>); BATCH],
        received: usize,
    }

    impl Batch {
        pub(super) fn new() -> Self {
            Batch {
                buffers: Box::new([[0; DATAGRAM_MAX]; BATCH]),
                meta: [(0, None); BATCH],
                received: 0,
            }
        }

        pub(super) fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
            self.received = 0;
            while self.received < BATCH {
                match socket.recv_from(&mut self.buffers[self.received]) {
                    Ok((len, source)) => {
                        self.meta[self.received] = (len, Some(source));
                        self.received += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if self.received == 0 => return Err(e),
                    Err(_) => break,
                }
            }
            Ok(self.received)
        }

        pub(super) fn get(&self, i: usize) -> Option<Datagram<'_>> {
            if i >= self.received {
                return None;
            }
            let (len, source) = self.meta[i];
            Some(Datagram {
                data: &self.buffers[i][..len],
                truncated: false,
                source: source?,
                arrival: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn pair() -> (UdpSocket, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        (rx, tx)
    }

    #[test]
    fn nothing_waiting_is_zero_not_an_error() {
        let (rx, _tx) = pair();
        let mut batch = RecvBatch::default();
        assert_eq!(batch.recv(&rx).unwrap(), 0);
        assert!(batch.get(0).is_none());
    }

    #[test]
    fn drains_several_datagrams_with_sources_and_arrival_times() {
        let (rx, tx) = pair();
        enable_arrival_timestamps(&rx).unwrap();
        let before = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        for i in 0..3u8 {
            tx.send_to(&[i; 172], rx.local_addr().unwrap()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        let mut batch = RecvBatch::default();
        assert_eq!(batch.recv(&rx).unwrap(), 3);
        for i in 0..3u8 {
            let d = batch.get(usize::from(i)).unwrap();
            assert_eq!(d.data, &[i; 172][..]);
            assert!(!d.truncated);
            assert_eq!(d.source, tx.local_addr().unwrap());
            let arrival = d.arrival.expect("kernel timestamp");
            assert!(
                arrival >= before - Duration::from_millis(1),
                "{arrival:?} {before:?}"
            );
            assert!(arrival < before + Duration::from_secs(1));
        }
        assert!(batch.get(3).is_none());
        assert_eq!(batch.recv(&rx).unwrap(), 0, "drained");
    }

    #[test]
    fn more_than_a_batch_waits_for_the_next_call() {
        let (rx, tx) = pair();
        for _ in 0..BATCH + 2 {
            tx.send_to(&[1; 12], rx.local_addr().unwrap()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        let mut batch = RecvBatch::default();
        assert_eq!(batch.recv(&rx).unwrap(), BATCH);
        assert_eq!(batch.recv(&rx).unwrap(), 2);
    }

    #[test]
    fn an_oversized_datagram_is_reported_truncated() {
        let (rx, tx) = pair();
        tx.send_to(&[7; DATAGRAM_MAX + 100], rx.local_addr().unwrap())
            .unwrap();
        tx.send_to(&[8; 20], rx.local_addr().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let mut batch = RecvBatch::default();
        assert_eq!(batch.recv(&rx).unwrap(), 2);
        let big = batch.get(0).unwrap();
        assert!(big.truncated);
        assert!(big.data.is_empty());
        assert_eq!(batch.get(1).unwrap().data, &[8; 20][..]);
    }

    #[test]
    fn ipv6_sources_are_decoded() {
        let Ok(rx) = UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 loopback on this host
        };
        rx.set_nonblocking(true).unwrap();
        let tx = UdpSocket::bind("[::1]:0").unwrap();
        tx.send_to(b"hello", rx.local_addr().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let mut batch = RecvBatch::default();
        assert_eq!(batch.recv(&rx).unwrap(), 1);
        assert_eq!(batch.get(0).unwrap().source, tx.local_addr().unwrap());
    }
}
