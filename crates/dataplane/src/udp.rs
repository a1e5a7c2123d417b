//! ESP-in-UDP sockets and the batched syscalls that move datagrams in groups.
//!
//! Each worker binds its own socket per local address with SO_REUSEPORT, so the kernel spreads
//! peers over workers by flow hash and no two workers contend for one socket's queue. Sockets
//! stay blocking for sends (a full send buffer then slows the reader of the TUN device instead
//! of dropping) and receive with MSG_DONTWAIT.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Binds a UDP socket on `addr` shared with the other workers' sockets (SO_REUSEPORT), with
/// socket buffers of `buffer` bytes. As root the buffers are forced past `rmem_max`/`wmem_max`:
/// the default ~208 KB receive buffer is where a receiving gateway loses most packets under load.
pub fn bind(addr: SocketAddr, buffer: usize) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    if buffer > 0 {
        set_buffer(&sock, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, buffer)?;
        set_buffer(&sock, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, buffer)?;
    }
    sock.bind(&addr.into())?;
    Ok(sock)
}

fn set_buffer(
    sock: &Socket,
    force: libc::c_int,
    plain: libc::c_int,
    size: usize,
) -> io::Result<()> {
    let v = size.min(i32::MAX as usize / 2) as libc::c_int;
    let set = |opt| {
        // SAFETY: setsockopt with a valid fd and a pointer to a c_int of the given size.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &v as *const libc::c_int as *const libc::c_void,
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(force) == 0 || set(plain) == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Receive side of a batch: `n` buffers with their headers, allocated once per worker.
pub struct RecvBatch {
    bufs: Vec<Box<[u8]>>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_storage>,
    hdrs: Vec<libc::mmsghdr>,
}

impl RecvBatch {
    pub fn new(n: usize, buf_len: usize) -> RecvBatch {
        let mut bufs: Vec<Box<[u8]>> = (0..n)
            .map(|_| vec![0u8; buf_len].into_boxed_slice())
            .collect();
        let mut iovs: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: sockaddr_storage and mmsghdr are plain C structs for which all-zero is valid.
        let mut addrs: Vec<libc::sockaddr_storage> =
            (0..n).map(|_| unsafe { mem::zeroed() }).collect();
        let hdrs = (0..n)
            .map(|i| {
                // SAFETY: as above.
                let mut h: libc::mmsghdr = unsafe { mem::zeroed() };
                h.msg_hdr.msg_iov = &mut iovs[i];
                h.msg_hdr.msg_iovlen = 1;
                h.msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
                h
            })
            .collect();
        RecvBatch {
            bufs,
            iovs,
            addrs,
            hdrs,
        }
    }

    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// One recvmmsg without blocking. Returns how many datagrams arrived (0 when none).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for h in self.hdrs.iter_mut() {
            h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        debug_assert_eq!(self.iovs.len(), self.hdrs.len());
        // SAFETY: every header points at this batch's own iovec and address storage, which
        // live as long as `self` and are not moved (the Vecs are never resized).
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                self.hdrs.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
            _ => Err(e),
        }
    }

    /// Datagram `i` of the last receive: its bytes (mutable, for in-place decryption) and
    /// whether the kernel had to truncate it.
    #[inline]
    pub fn datagram(&mut self, i: usize) -> (&mut [u8], bool) {
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(self.bufs[i].len());
        let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        (&mut self.bufs[i][..len], truncated)
    }

    /// Where datagram `i` of the last receive came from.
    pub fn source(&self, i: usize) -> Option<SocketAddr> {
        // SAFETY: the kernel filled this storage and its length on receive.
        let a = unsafe { SockAddr::new(self.addrs[i], self.hdrs[i].msg_hdr.msg_namelen) };
        a.as_socket()
    }
}

/// Send side of a batch: headers pointing at caller-owned buffers and destination addresses.
/// Filled and flushed within one batch, while the buffers and the table snapshot that owns the
/// addresses are alive.
pub struct SendBatch {
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    len: usize,
}

impl SendBatch {
    pub fn new(n: usize) -> SendBatch {
        SendBatch {
            iovs: (0..n)
                .map(|_| libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                })
                .collect(),
            // SAFETY: all-zero mmsghdr is valid.
            hdrs: (0..n).map(|_| unsafe { mem::zeroed() }).collect(),
            len: 0,
        }
    }

    pub fn is_full(&self) -> bool {
        self.len == self.hdrs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `data` for `to`. The caller keeps both alive and unmoved until [`flush`].
    #[inline]
    pub fn push(&mut self, data: &[u8], to: &SockAddr) {
        let i = self.len;
        self.iovs[i] = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let h = &mut self.hdrs[i].msg_hdr;
        h.msg_iov = &mut self.iovs[i];
        h.msg_iovlen = 1;
        h.msg_name = to.as_ptr() as *mut libc::c_void;
        h.msg_namelen = to.len();
        self.len += 1;
    }

    /// Sends everything queued with as few sendmmsg calls as the kernel allows. Returns
    /// (sent, failed): a datagram the kernel refuses is skipped and counted, the rest still go.
    pub fn flush(&mut self, fd: RawFd) -> (usize, usize) {
        let (mut done, mut failed) = (0, 0);
        while done < self.len {
            // SAFETY: headers [done..len) were filled by push() with pointers the caller keeps
            // alive until this call returns.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs[done..].as_mut_ptr(),
                    (self.len - done) as libc::c_uint,
                    0,
                )
            };
            if r > 0 {
                done += r as usize;
            } else if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            } else {
                // The first remaining datagram failed (unreachable, too big...): skip it.
                done += 1;
                failed += 1;
            }
        }
        self.len = 0;
        (done - failed, failed)
    }
}
