//! ESP-in-UDP sockets and the batched syscalls that move datagrams in groups.
//!
//! Each worker binds its own socket per local address with SO_REUSEPORT, so the kernel spreads
//! peers over workers by flow hash and no two workers contend for one socket's queue. Sockets
//! stay blocking for sends (a full send buffer then slows the reader of the TUN device instead
//! of dropping) and receive with MSG_DONTWAIT.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Binds a UDP socket on `addr` shared with the other workers' sockets (SO_REUSEPORT), with
/// socket buffers of `buffer` bytes. As root the buffers are forced past `rmem_max`/`wmem_max`:
/// the default ~208 KB receive buffer is where a receiving gateway loses most packets under load.
/// `freebind`: the address may be absent from this host (IP_FREEBIND, see [`bind_ike`]).
pub fn bind(addr: SocketAddr, buffer: usize, freebind: bool) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    set_freebind(&sock, addr, freebind)?;
    if buffer > 0 {
        set_buffer(&sock, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, buffer)?;
        set_buffer(&sock, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, buffer)?;
    }
    sock.bind(&addr.into())?;
    Ok(sock)
}

/// Binds the plain (blocking) UDP socket IKE is received and sent on, at `addr`. With
/// `freebind` the bind succeeds while the address is not on any interface (IP_FREEBIND, ip(7)):
/// a shared address of an active-standby pair, which the other gateway holds. Measured on
/// Linux 6.18: such a socket's sends fail with ENETUNREACH while the address is away, and it
/// sends and receives as soon as the address is added, so one socket bound at start serves
/// every takeover. Other addresses are bound plainly, so a mistyped one still fails at start.
/// `rcvbuf` (0: the kernel's default) is its receive buffer, forced past `rmem_max` as root as
/// the ESP sockets' are: a burst of IKE_SA_INIT from thousands of peers must wait there while
/// the reader thread has no core.
pub fn bind_ike(
    addr: SocketAddr,
    freebind: bool,
    rcvbuf: usize,
) -> io::Result<std::net::UdpSocket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    set_freebind(&sock, addr, freebind)?;
    if rcvbuf > 0 {
        set_buffer(&sock, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, rcvbuf)?;
    }
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

/// IP_FREEBIND (IPv4) or IPV6_FREEBIND when `on`; nothing otherwise.
fn set_freebind(sock: &Socket, addr: SocketAddr, on: bool) -> io::Result<()> {
    if !on {
        return Ok(());
    }
    if addr.is_ipv6() {
        sock.set_freebind_ipv6(true)
    } else {
        sock.set_freebind(true)
    }
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
    /// Control buffers: where UDP GRO says how large the coalesced segments are.
    ctrl: Vec<[u64; CTRL_LEN / 8]>,
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
            ctrl: vec![[0u64; CTRL_LEN / 8]; n],
        }
    }

    pub fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// One recvmmsg without blocking. Returns how many datagrams arrived (0 when none).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for (h, c) in self.hdrs.iter_mut().zip(self.ctrl.iter_mut()) {
            h.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_flags = 0;
            h.msg_hdr.msg_control = c.as_mut_ptr().cast();
            h.msg_hdr.msg_controllen = CTRL_LEN as _;
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

    /// The size of the segments datagram `i` holds, when the kernel coalesced several (UDP
    /// GRO); None for a single datagram.
    pub fn segment_size(&self, i: usize) -> Option<usize> {
        let h = &self.hdrs[i].msg_hdr;
        if h.msg_controllen == 0 {
            return None;
        }
        // SAFETY: the kernel wrote `msg_controllen` bytes of cmsgs into this message's own
        // control buffer; CMSG_FIRSTHDR/NXTHDR stay within it.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                if (*c).cmsg_level == SOL_UDP && (*c).cmsg_type == UDP_GRO {
                    let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                    return usize::try_from(v).ok().filter(|v| *v > 0);
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        None
    }

    /// The outer TOS / traffic class of datagram `i`, if the socket asked for it
    /// ([`enable_recv_tos`]).
    pub fn tos(&self, i: usize) -> Option<u8> {
        let h = &self.hdrs[i].msg_hdr;
        if h.msg_controllen == 0 {
            return None;
        }
        // SAFETY: the kernel wrote `msg_controllen` bytes of cmsgs into this message's own
        // control buffer; CMSG_FIRSTHDR/NXTHDR stay within it, and CMSG_DATA of a cmsg of
        // this level and type holds at least one byte (IP_TOS) or an int (IPV6_TCLASS).
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                match ((*c).cmsg_level, (*c).cmsg_type) {
                    (libc::IPPROTO_IP, libc::IP_TOS) => return Some(*libc::CMSG_DATA(c)),
                    (libc::IPPROTO_IPV6, libc::IPV6_TCLASS) => {
                        let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                        return Some(v as u8);
                    }
                    _ => {}
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
        None
    }

    /// Datagram `i` as [`RecvBatch::datagram`] gives it, with its source to read only if
    /// needed (converting every source address would be a per-datagram cost the ESP path has
    /// no use for).
    #[inline]
    pub fn datagram_from(&mut self, i: usize) -> (&mut [u8], bool, Source<'_>) {
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(self.bufs[i].len());
        let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        let from = Source {
            addr: &self.addrs[i],
            len: h.msg_hdr.msg_namelen,
        };
        (&mut self.bufs[i][..len], truncated, from)
    }
}

/// `setsockopt`/cmsg numbers for UDP segmentation offload (Linux 4.18+, GRO 5.0+), which the
/// libc crate does not export for every target.
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;
/// udp(7): accept zero-checksum datagrams on an IPv6 socket (Linux 3.16+).
const UDP_NO_CHECK6_RX: libc::c_int = 102;
/// The kernel takes at most 64 segments and 64 KiB per GSO send.
const GSO_MAX_SEGMENTS: usize = 64;
const GSO_MAX_BYTES: usize = 65_000;
/// Room for two cmsgs carrying an int each (UDP_SEGMENT and IP_TOS / IPV6_TCLASS), aligned
/// as the kernel wants.
const CTRL_LEN: usize = 64;

/// `msg_iovlen` as usize: it is `size_t` on glibc and `int` on musl.
#[inline]
#[allow(clippy::unnecessary_cast)]
fn iovlen(h: &libc::msghdr) -> usize {
    h.msg_iovlen as usize
}

/// Asks the kernel to hand this socket coalesced datagrams (UDP GRO): one receive then brings
/// up to 64 KiB of same-sized ESP packets from one peer, split again by [`RecvBatch::segment_size`].
/// Returns whether the kernel agreed; old kernels refuse and the socket works as before.
pub fn enable_gro(sock: &Socket) -> bool {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a valid fd and a pointer to a c_int of the given size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            SOL_UDP,
            UDP_GRO,
            &one as *const libc::c_int as *const libc::c_void,
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// Makes an IPv6 UDP socket accept datagrams whose UDP checksum is zero (UDP_NO_CHECK6_RX,
/// udp(7)): RFC 6936 lets a tunnel endpoint accept them only where configured to
/// (`gateway.udp6_zero_checksum = "accept"`). Without it the kernel drops them before the
/// socket sees them and counts them in /proc/net/snmp6 Udp6InCsumErrors and Udp6InErrors
/// (measured on Linux 6.18). Sending is untouched: our checksums are always computed.
pub fn accept_zero_checksum6(sock: &impl AsRawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a valid fd and a pointer to a c_int of the given size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            SOL_UDP,
            UDP_NO_CHECK6_RX,
            &one as *const libc::c_int as *const libc::c_void,
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the kernel for each received datagram's TOS / traffic class (IP_RECVTOS and, on an
/// IPv6 socket, IPV6_RECVTCLASS), read by [`RecvBatch::tos`]. Returns whether it agreed.
pub fn enable_recv_tos(sock: &Socket, v6: bool) -> bool {
    let one: libc::c_int = 1;
    let (level, name) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVTOS)
    };
    // SAFETY: setsockopt with a valid fd and a pointer to a c_int of the given size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            &one as *const libc::c_int as *const libc::c_void,
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// The source address of a received datagram, converted on demand.
pub struct Source<'a> {
    addr: &'a libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl Source<'_> {
    pub fn get(&self) -> Option<SocketAddr> {
        // SAFETY: the kernel filled this storage and its length on receive.
        unsafe { SockAddr::new(*self.addr, self.len) }.as_socket()
    }
}

/// Storage for batched sends, allocated once per worker and reused by every [`SendBatch`]:
/// the iovecs, message headers and control buffers sendmmsg reads. Between batches the raw
/// pointers left in it are stale and never read: a batch only hands the kernel the entries it
/// wrote itself.
///
/// With segmentation offload on, consecutive datagrams to one destination that all have the
/// same size (the last may be shorter) go out as one message with a UDP_SEGMENT control
/// message: the kernel walks one large buffer through its stack instead of each packet, and
/// splits it as late as it can. A kernel or device that refuses (EIO, EINVAL...) turns it off
/// for good and the datagrams go out one by one.
pub struct SendSlots {
    /// One per datagram, in push order; a message's datagrams are contiguous here.
    iovs: Vec<libc::iovec>,
    /// One per message.
    hdrs: Vec<libc::mmsghdr>,
    ctrl: Vec<[u64; CTRL_LEN / 8]>,
    /// Per message: its segment size and total bytes.
    seg: Vec<Segments>,
    gso: bool,
    /// Messages of more than one datagram the kernel took since the last
    /// [`SendBatch::take_sent_super`]: the proof that segmentation offload is at work.
    sent_super: u64,
}

/// The datagrams one GSO message carries: `size` bytes each (the last may be shorter),
/// `total` bytes in all, sent with outer TOS / traffic class `tos` (0: the socket's, no
/// control message) to an IPv6 destination or not.
#[derive(Clone, Copy, Default)]
struct Segments {
    size: usize,
    total: usize,
    tos: u8,
    v6: bool,
}

impl SendSlots {
    /// Room for `n` datagrams per batch.
    pub fn new(n: usize) -> SendSlots {
        SendSlots {
            iovs: (0..n)
                .map(|_| libc::iovec {
                    iov_base: std::ptr::null_mut(),
                    iov_len: 0,
                })
                .collect(),
            // SAFETY: mmsghdr is a plain C struct for which all-zero (null pointers, zero
            // lengths) is a valid value.
            hdrs: (0..n).map(|_| unsafe { mem::zeroed() }).collect(),
            ctrl: vec![[0u64; CTRL_LEN / 8]; n],
            seg: vec![Segments::default(); n],
            gso: false,
            sent_super: 0,
        }
    }

    /// Turns segmentation offload on (it starts off).
    pub fn with_gso(mut self, on: bool) -> SendSlots {
        self.gso = on;
        self
    }

    /// Whether segmentation offload is (still) on.
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// How many datagrams one batch holds.
    pub fn capacity(&self) -> usize {
        self.iovs.len()
    }

    /// An empty batch in these slots. Datagrams pushed to it must outlive it, which is what
    /// makes holding their addresses until [`SendBatch::flush`] sound.
    pub fn batch<'a>(&'a mut self) -> SendBatch<'a> {
        SendBatch {
            slots: self,
            msgs: 0,
            pkts: 0,
            borrowed: std::marker::PhantomData,
        }
    }
}

/// One batch of datagrams for [`SendBatch::flush`] to send with as few syscalls as it can.
/// It keeps the addresses of the datagrams and destinations pushed to it, so it borrows them
/// for its own lifetime `'a`: the borrow checker then proves they are alive and unchanged
/// when the kernel reads them. Datagrams still queued when a batch is dropped are not sent.
///
/// ```compile_fail
/// # use ironsec_dataplane::udp::SendSlots;
/// let to: socket2::SockAddr = "127.0.0.1:9".parse::<std::net::SocketAddr>().unwrap().into();
/// let mut slots = SendSlots::new(4);
/// let mut batch = slots.batch();
/// {
///     let data = vec![0u8; 100];
///     batch.push(&data, &to); // `data` does not live long enough
/// }
/// batch.is_empty();
/// ```
pub struct SendBatch<'a> {
    slots: &'a mut SendSlots,
    /// Messages and datagrams queued in `slots`.
    msgs: usize,
    pkts: usize,
    /// The datagrams and destinations whose addresses `slots` holds.
    borrowed: std::marker::PhantomData<(&'a [u8], &'a SockAddr)>,
}

impl<'a> SendBatch<'a> {
    /// How many GSO messages (several datagrams in one send) went out since the last call.
    pub fn take_sent_super(&mut self) -> u64 {
        std::mem::take(&mut self.slots.sent_super)
    }

    pub fn is_full(&self) -> bool {
        self.pkts == self.slots.iovs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pkts == 0
    }

    /// Queues `data` for `to`. Panics when the batch is full (see [`SendBatch::is_full`]).
    #[inline]
    pub fn push(&mut self, data: &'a [u8], to: &'a SockAddr) {
        self.push_marked(data, to, 0, false)
    }

    /// Queues `data` for `to` as a message of its own that no other datagram joins: a
    /// datagram larger than the path MTU, which the kernel fragments when sent alone but
    /// refuses (EINVAL) as a GSO segment.
    #[inline]
    pub fn push_alone(&mut self, data: &'a [u8], to: &'a SockAddr) {
        self.push_marked(data, to, 0, true)
    }

    /// [`SendBatch::push`] (or, `alone`, [`SendBatch::push_alone`]) with the outer header's
    /// TOS / traffic class byte `tos` (an IP_TOS or IPV6_TCLASS control message; 0 sends
    /// none). Only datagrams of one `tos` share a GSO message.
    #[inline]
    pub fn push_marked(&mut self, data: &'a [u8], to: &'a SockAddr, tos: u8, alone: bool) {
        let sl = &mut *self.slots;
        let p = self.pkts;
        // The kernel only reads through iov_base (sendmsg does not write the datagram), so
        // the mutable pointer type libc asks for is never used to write.
        sl.iovs[p] = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        self.pkts += 1;
        if sl.gso && self.msgs > 0 && !alone {
            let m = self.msgs - 1;
            let h = &mut sl.hdrs[m].msg_hdr;
            let seg = sl.seg[m];
            let last_full = sl.iovs[p - 1].iov_len == seg.size;
            if h.msg_name == to.as_ptr() as *mut libc::c_void
                && last_full
                && data.len() <= seg.size
                && seg.tos == tos
                && iovlen(h) < GSO_MAX_SEGMENTS
                && seg.total + data.len() <= GSO_MAX_BYTES
            {
                h.msg_iovlen += 1;
                sl.seg[m].total += data.len();
                return;
            }
        }
        let m = self.msgs;
        let h = &mut sl.hdrs[m].msg_hdr;
        h.msg_iov = &mut sl.iovs[p];
        h.msg_iovlen = 1;
        h.msg_name = to.as_ptr() as *mut libc::c_void;
        h.msg_namelen = to.len();
        h.msg_control = std::ptr::null_mut();
        h.msg_controllen = 0;
        sl.seg[m] = Segments {
            size: data.len(),
            // Full to the brim: nothing joins a message sent alone.
            total: if alone { GSO_MAX_BYTES } else { data.len() },
            tos,
            v6: to.is_ipv6(),
        };
        self.msgs += 1;
    }

    /// Adds the control messages: UDP_SEGMENT to every message of several datagrams, IP_TOS
    /// (IPV6_TCLASS) to every message with a `tos`.
    fn attach_segments(&mut self) {
        let sl = &mut *self.slots;
        for m in 0..self.msgs {
            let h = &mut sl.hdrs[m].msg_hdr;
            let seg = sl.seg[m];
            let segment = h.msg_iovlen >= 2;
            if !segment && seg.tos == 0 {
                continue;
            }
            h.msg_control = sl.ctrl[m].as_mut_ptr().cast();
            // SAFETY: CMSG_SPACE/LEN are pure arithmetic. The control buffer is CTRL_LEN
            // bytes (8-aligned, as cmsghdr wants), at least CMSG_SPACE(2) + CMSG_SPACE(4);
            // msg_controllen is set to cover every cmsg written before CMSG_FIRSTHDR/NXTHDR
            // are asked for their position, so each points inside the buffer.
            unsafe {
                let seg_space = libc::CMSG_SPACE(mem::size_of::<u16>() as u32) as usize;
                let tos_space = libc::CMSG_SPACE(mem::size_of::<libc::c_int>() as u32) as usize;
                h.msg_controllen =
                    (usize::from(segment) * seg_space + usize::from(seg.tos != 0) * tos_space) as _;
                let mut c = libc::CMSG_FIRSTHDR(h);
                if segment {
                    (*c).cmsg_level = SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg.size as u16);
                    c = libc::CMSG_NXTHDR(h, c);
                }
                if seg.tos != 0 && !c.is_null() {
                    (*c).cmsg_level = if seg.v6 {
                        libc::IPPROTO_IPV6
                    } else {
                        libc::IPPROTO_IP
                    };
                    (*c).cmsg_type = if seg.v6 {
                        libc::IPV6_TCLASS
                    } else {
                        libc::IP_TOS
                    };
                    (*c).cmsg_len = libc::CMSG_LEN(mem::size_of::<libc::c_int>() as u32) as _;
                    let v = libc::c_int::from(seg.tos);
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>(), v);
                }
            }
        }
    }

    /// Sends message `m`'s datagrams one by one (after the kernel refused to segment it).
    fn send_each(&mut self, fd: BorrowedFd<'_>, m: usize) -> (usize, usize) {
        let h = self.slots.hdrs[m].msg_hdr;
        let (mut sent, mut failed) = (0, 0);
        for k in 0..iovlen(&h) {
            // SAFETY: msghdr is a plain C struct for which all-zero is a valid value.
            let mut one: libc::msghdr = unsafe { mem::zeroed() };
            one.msg_name = h.msg_name;
            one.msg_namelen = h.msg_namelen;
            // SAFETY: message m was written by push() in this batch: msg_iov points at
            // `msg_iovlen` consecutive iovecs of `self.slots.iovs`, so k < msg_iovlen stays
            // inside that Vec.
            one.msg_iov = unsafe { h.msg_iov.add(k) };
            one.msg_iovlen = 1;
            // SAFETY: `one` points at an iovec of this batch and its destination, both set by
            // push() from buffers borrowed for 'a, which `self` does not outlive.
            if unsafe { libc::sendmsg(fd.as_raw_fd(), &one, 0) } >= 0 {
                sent += 1;
            } else {
                failed += 1;
            }
        }
        (sent, failed)
    }

    /// Sends everything queued with as few sendmmsg calls as the kernel allows, on `sock`,
    /// and empties the batch. Returns (sent, failed) datagrams: a datagram the kernel refuses
    /// is skipped and counted, the rest still go.
    pub fn flush(&mut self, sock: BorrowedFd<'_>) -> (usize, usize) {
        self.attach_segments();
        let (mut done, mut sent, mut failed) = (0, 0, 0);
        while done < self.msgs {
            // SAFETY: headers [done..msgs) were written by push() in this batch: each points
            // at iovecs and control buffers in `self.slots` (never resized, so not moved) and
            // at datagrams and destinations borrowed for 'a, which `self` does not outlive.
            // The count passed is the number of such headers.
            let r = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    self.slots.hdrs[done..].as_mut_ptr(),
                    (self.msgs - done) as libc::c_uint,
                    0,
                )
            };
            if r > 0 {
                for m in done..done + r as usize {
                    let segs = iovlen(&self.slots.hdrs[m].msg_hdr);
                    sent += segs;
                    if segs > 1 {
                        self.slots.sent_super += 1;
                    }
                }
                done += r as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            if r < 0 && e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            let segs = iovlen(&self.slots.hdrs[done].msg_hdr);
            let refused = matches!(
                e.raw_os_error(),
                Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
            );
            if segs > 1 && refused {
                // No segmentation here: never again, and this message's datagrams one by one.
                self.slots.gso = false;
                let (s, f) = self.send_each(sock, done);
                sent += s;
                failed += f;
            } else {
                // The first remaining message failed (unreachable, too big...): skip it.
                failed += segs;
            }
            done += 1;
        }
        self.msgs = 0;
        self.pkts = 0;
        (sent, failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// A shared address that is not on this host: a plain bind fails (a typo is caught at
    /// start), a freebind one succeeds, for the IKE socket and the ESP sockets alike.
    /// 192.0.2.77 (TEST-NET-1) is on no interface of a test machine; nothing is sent.
    #[test]
    fn freebind_binds_an_absent_address_and_only_when_asked() {
        let absent: SocketAddr = "192.0.2.77:0".parse().unwrap();
        let e = bind_ike(absent, false, 0).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL), "{e}");
        assert!(bind(absent, 0, false).is_err());
        let s = bind_ike(absent, true, 0).unwrap();
        assert_eq!(s.local_addr().unwrap().ip(), absent.ip());
        let s = bind(absent, 0, true).unwrap();
        assert_eq!(
            s.local_addr().unwrap().as_socket().unwrap().ip(),
            absent.ip()
        );
    }

    fn sock(addr: &str) -> Socket {
        bind(addr.parse().unwrap(), 1 << 20, false).unwrap()
    }

    /// Sends 20 datagrams (19 of 1000 bytes and a short last one) to `to` through one batch.
    fn send_run(tx: &Socket, to: SocketAddr, gso: bool) -> (usize, usize, bool) {
        let bufs: Vec<Vec<u8>> = (0..20u8)
            .map(|i| vec![i; if i == 19 { 300 } else { 1000 }])
            .collect();
        let to: SockAddr = to.into();
        let mut slots = SendSlots::new(32).with_gso(gso);
        let mut b = slots.batch();
        for d in &bufs {
            b.push(d, &to);
        }
        let (sent, failed) = b.flush(tx.as_fd());
        assert!(b.is_empty());
        (sent, failed, slots.gso())
    }

    /// GSO on loopback: a receiver without GRO gets the exact datagrams, in order; one with
    /// GRO gets them coalesced with their segment size, and splitting restores them.
    #[test]
    fn gso_sends_exact_datagrams_and_gro_coalesces_them() {
        let tx = sock("127.0.0.1:0");
        let plain = sock("127.0.0.1:0");
        let to = plain.local_addr().unwrap().as_socket().unwrap();
        let (sent, failed, still_gso) = send_run(&tx, to, true);
        assert_eq!((sent, failed), (20, 0));
        let mut rb = RecvBatch::new(32, 2048);
        let mut got = Vec::new();
        for _ in 0..100 {
            let n = rb.recv(plain.as_raw_fd()).unwrap();
            for i in 0..n {
                assert_eq!(rb.segment_size(i), None);
                got.push(rb.datagram(i).0.to_vec());
            }
            if got.len() >= 20 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(got.len(), 20, "gso still on: {still_gso}");
        for (i, d) in got.iter().enumerate() {
            assert!(d.iter().all(|b| *b == i as u8), "datagram {i}");
            assert_eq!(d.len(), if i == 19 { 300 } else { 1000 });
        }

        let gro = sock("127.0.0.1:0");
        if !enable_gro(&gro) {
            return; // a kernel without UDP GRO: the plain path above is what runs there
        }
        let to = gro.local_addr().unwrap().as_socket().unwrap();
        send_run(&tx, to, true);
        let mut rb = RecvBatch::new(8, 65_535);
        let mut segs = Vec::new();
        for _ in 0..100 {
            let n = rb.recv(gro.as_raw_fd()).unwrap();
            for i in 0..n {
                let step = rb.segment_size(i);
                let (d, trunc) = rb.datagram(i);
                assert!(!trunc);
                let step = step.unwrap_or(d.len());
                segs.extend(d.chunks(step).map(|c| c.to_vec()));
            }
            if segs.len() >= 20 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(segs.len(), 20);
        for (i, d) in segs.iter().enumerate() {
            assert!(d.iter().all(|b| *b == i as u8), "segment {i}");
        }
    }

    /// A plain batch (no GSO) to two loopback receivers: each gets its datagrams, in order;
    /// the slots then serve a second batch whose buffers are new.
    #[test]
    fn batch_sends_to_loopback_sockets_and_slots_are_reused() {
        let tx = sock("127.0.0.1:0");
        let rx = [sock("127.0.0.1:0"), sock("127.0.0.1:0")];
        let to: Vec<SockAddr> = rx.iter().map(|r| r.local_addr().unwrap()).collect();
        let mut slots = SendSlots::new(8);
        for round in 0..2u8 {
            let bufs: Vec<Vec<u8>> = (0..6u8).map(|i| vec![round * 10 + i; 100]).collect();
            let mut b = slots.batch();
            for (i, d) in bufs.iter().enumerate() {
                b.push(d, &to[i % 2]);
            }
            assert!(!b.is_full());
            assert_eq!(b.flush(tx.as_fd()), (6, 0));
            for (r, rx) in rx.iter().enumerate() {
                let mut rb = RecvBatch::new(8, 2048);
                let mut got = Vec::new();
                for _ in 0..100 {
                    let n = rb.recv(rx.as_raw_fd()).unwrap();
                    got.extend((0..n).map(|i| rb.datagram(i).0.to_vec()));
                    if got.len() >= 3 {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                let want: Vec<Vec<u8>> = (0..3u8)
                    .map(|k| vec![round * 10 + 2 * k + r as u8; 100])
                    .collect();
                assert_eq!(got, want, "round {round}, receiver {r}");
            }
        }
    }

    /// Different destinations or sizes never share a GSO message.
    #[test]
    fn gso_groups_only_same_destination_and_size() {
        let a: SockAddr = "127.0.0.1:9".parse::<SocketAddr>().unwrap().into();
        let b: SockAddr = "127.0.0.1:10".parse::<SocketAddr>().unwrap().into();
        let big = vec![0u8; 1000];
        let small = vec![0u8; 500];
        let mut slots = SendSlots::new(16).with_gso(true);
        let mut s = slots.batch();
        s.push(&big, &a);
        s.push(&big, &a);
        s.push(&small, &a); // shorter last: closes the message
        s.push(&big, &a);
        s.push(&big, &b);
        assert_eq!(s.msgs, 3);
        let lens: Vec<usize> = s.slots.hdrs[..3]
            .iter()
            .map(|h| iovlen(&h.msg_hdr))
            .collect();
        assert_eq!(lens, [3, 1, 1]);
        let mut off = SendSlots::new(16);
        let mut off = off.batch();
        off.push(&big, &a);
        off.push(&big, &a);
        assert_eq!(off.msgs, 2);
    }

    /// Marked datagrams (IP_TOS) only share a GSO message with the same mark, and the kernel
    /// takes both control messages together: every datagram arrives, with its TOS.
    #[test]
    fn marked_datagrams_carry_their_tos() {
        let rx = bind("127.0.0.1:0".parse().unwrap(), 1 << 20, false).unwrap();
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with a valid fd and a pointer to a c_int of the given size.
        let r = unsafe {
            libc::setsockopt(
                rx.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_RECVTOS,
                (&one as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
        let to: SockAddr = rx.local_addr().unwrap();
        let tx = bind("127.0.0.1:0".parse().unwrap(), 1 << 20, false).unwrap();
        let d = vec![7u8; 200];
        let mut slots = SendSlots::new(8).with_gso(true);
        let mut s = slots.batch();
        s.push_marked(&d, &to, 0xb8, false);
        s.push_marked(&d, &to, 0xb8, false);
        s.push_marked(&d, &to, 0x28, false);
        s.push(&d, &to);
        assert_eq!(s.msgs, 3, "EF pair, AF11 one, unmarked one");
        assert_eq!(s.flush(tx.as_fd()), (4, 0));
        let mut tos = Vec::new();
        let mut batch = RecvBatch::new(8, 2048);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while tos.len() < 4 && std::time::Instant::now() < deadline {
            let n = batch.recv(rx.as_raw_fd()).unwrap();
            for i in 0..n {
                let h = &batch.hdrs[i].msg_hdr;
                let mut t = None;
                // SAFETY: the kernel wrote msg_controllen bytes of cmsgs into this message's
                // control buffer; CMSG_FIRSTHDR/NXTHDR stay within it.
                unsafe {
                    let mut c = libc::CMSG_FIRSTHDR(h);
                    while !c.is_null() {
                        if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_TOS {
                            t = Some(*libc::CMSG_DATA(c));
                        }
                        c = libc::CMSG_NXTHDR(h, c);
                    }
                }
                tos.push(t.expect("IP_TOS cmsg"));
            }
        }
        assert_eq!(tos, [0xb8, 0xb8, 0x28, 0]);
    }

    /// A datagram pushed alone (larger than the path MTU) neither joins a run nor is joined.
    #[test]
    fn pushed_alone_is_a_message_of_its_own() {
        let a: SockAddr = "127.0.0.1:9".parse::<SocketAddr>().unwrap().into();
        let big = vec![0u8; 1000];
        let mut slots = SendSlots::new(16).with_gso(true);
        let mut s = slots.batch();
        s.push(&big, &a);
        s.push_alone(&big, &a);
        s.push(&big, &a);
        s.push(&big, &a);
        let lens: Vec<usize> = s.slots.hdrs[..s.msgs]
            .iter()
            .map(|h| iovlen(&h.msg_hdr))
            .collect();
        assert_eq!(lens, [1, 1, 2]);
    }
}
