//! The host side of virtio-net scenarios: the echo peer (a thread of the
//! runner at the far end of a datagram or tap back-end), which checks each
//! frame the firmware sends against the contract's generator and sends
//! back the answer the firmware expects; and the scenario set-up of net
//! devices (`-device`, the back-end, what `nets=` tells the firmware).
//!
//! A datagram back-end joins QEMU and the peer over UDP on 127.0.0.1. A
//! tap back-end lives in a network namespace the peer makes itself (a
//! thread that leaves the runner's namespace): the peer creates the tap
//! there (multi-queue, persistent, no IPv6 so the kernel sends nothing of
//! its own), QEMU joins the namespace ([`Peer::netns`]) and attaches one
//! queue per pair, and the peer talks on the tap through a packet socket.

use crate::peers::{Peer, PeerContext, PeerEnd, PeerOutcome, PeerSpec};
use crate::scenario::{CcwDevice, Scenario};
use std::collections::HashSet;
use std::io;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zvtest_contract::checks::markers::NET_LINK_READY;
use zvtest_contract::net::{
    alternate_mac, answer_of, echo_frame, echo_id, first_difference, group_mac, EchoKind, MacText,
    MAX_FRAME,
};
pub use zvtest_contract::net::{Mac, NetConfig, NetPeer, CTRL_OFF, FILTER_SEQ0};

/// What the echo peer does wrong on purpose, to prove the firmware's
/// checks fail (and say what went wrong).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Answers every frame right.
    None,
    /// Flips the lowest bit of byte `offset` of the answer to frame `seq`
    /// of queue pair `pair`.
    Flip { pair: u16, seq: u32, offset: usize },
    /// Never answers frame `seq` of `pair`.
    Drop { pair: u16, seq: u32 },
    /// Sends the answer to frame `seq` of `pair` to the broadcast address
    /// (which every receive filter takes) instead of the sender's.
    Broadcast { pair: u16, seq: u32 },
    /// Closes its socket after answering `answers` frames.
    CloseAfter { answers: u64 },
}

/// The back-end between QEMU and the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `-netdev dgram` over UDP on 127.0.0.1.
    Dgram,
    /// `-netdev socket,udp=` over UDP on 127.0.0.1: for QEMUs before 7.2,
    /// which have no `dgram`.
    SocketUdp,
    /// `-netdev tap` with `queues` queues, in a namespace of the peer's.
    Tap { queues: u16 },
}

/// How a scenario's echo device is set up: its back-end, the MTU it is
/// offered with (QEMU's `host_mtu=`: frames up to `14 + mtu` bytes),
/// whether it offers the packed ring (`packed=on`), the control features
/// it is started without ([`CTRL_OFF`] bits: `ctrl_rx=off`, ...), and
/// what its peer does wrong on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo {
    pub backend: Backend,
    pub mtu: Option<u16>,
    pub packed: bool,
    pub ctrl_off: u8,
    pub misbehaviour: Misbehaviour,
}

impl Echo {
    /// Over `-netdev dgram`, the standard MTU, every frame answered right.
    pub fn dgram() -> Self {
        Echo {
            backend: Backend::Dgram,
            mtu: None,
            packed: false,
            ctrl_off: 0,
            misbehaviour: Misbehaviour::None,
        }
    }

    /// Over `-netdev socket,udp=` (QEMUs without `dgram`).
    pub fn socket_udp() -> Self {
        Echo {
            backend: Backend::SocketUdp,
            ..Echo::dgram()
        }
    }

    /// Over a tap with `queues` queues (`mq=on` where more than one).
    pub fn tap(queues: u16) -> Self {
        Echo {
            backend: Backend::Tap { queues },
            ..Echo::dgram()
        }
    }

    pub fn mtu(self, mtu: u16) -> Self {
        Echo {
            mtu: Some(mtu),
            ..self
        }
    }

    /// The device offers VIRTIO_F_RING_PACKED (`packed=on`), so that
    /// `net.echo` drives its packed-ring rounds too.
    pub fn packed(self) -> Self {
        Echo {
            packed: true,
            ..self
        }
    }

    /// The device is started with the control feature `word` off (a
    /// [`CTRL_OFF`] word: `ctrl_rx`, `ctrl_vlan`, `ctrl_mac_addr`), and
    /// `nets=` says so.
    pub fn ctrl_off(self, word: &str) -> Self {
        let bit = CTRL_OFF
            .iter()
            .find(|(w, _, _)| *w == word)
            .map_or(0, |&(_, b, _)| b);
        Echo {
            ctrl_off: self.ctrl_off | bit,
            ..self
        }
    }

    pub fn misbehave(self, misbehaviour: Misbehaviour) -> Self {
        Echo {
            misbehaviour,
            ..self
        }
    }
}

/// The echo peer of one net device.
#[derive(Debug, Clone)]
pub struct EchoPeer {
    /// The QEMU id of the back-end it serves.
    pub netdev: String,
    /// The guest's MAC (the frames' source, the answers' destination).
    pub guest: Mac,
    pub backend: Backend,
    pub misbehaviour: Misbehaviour,
    /// The longest frame the generator makes (the firmware's too).
    pub max_frame: usize,
}

/// The tap's name inside the peer's namespace.
pub const TAP_NAME: &str = "zvtap0";
/// How long the peer blocks on its socket before it looks whether to stop.
const POLL: Duration = Duration::from_millis(50);

impl PeerSpec for EchoPeer {
    fn name(&self) -> String {
        format!("net-echo {}", self.netdev)
    }

    fn start(&self, ctx: &PeerContext) -> io::Result<Box<dyn Peer>> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut state = EchoState::new(ctx.seed, self.guest, self.misbehaviour, self.max_frame);
        let deadline = ctx.deadline;
        let (args, thread, netns) = match self.backend {
            Backend::Dgram | Backend::SocketUdp => {
                let sock = UdpSocket::bind("127.0.0.1:0")?;
                // Room for a window of jumbo frames; the default where refused.
                let _ = set_receive_buffer(&sock, 4 << 20);
                sock.set_read_timeout(Some(POLL))?;
                let port = sock.local_addr()?.port();
                // QEMU binds a port of its own; the peer answers where
                // each frame came from.
                let netdev = match self.backend {
                    Backend::SocketUdp => format!(
                        "socket,id={},udp=127.0.0.1:{port},localaddr=127.0.0.1:0",
                        self.netdev
                    ),
                    _ => format!(
                        "dgram,id={},local.type=inet,local.host=127.0.0.1,local.port=0,\
                         remote.type=inet,remote.host=127.0.0.1,remote.port={port}",
                        self.netdev
                    ),
                };
                let args = vec!["-netdev".to_string(), netdev];
                let stop2 = stop.clone();
                let thread =
                    std::thread::Builder::new()
                        .name("net-echo".into())
                        .spawn(move || {
                            let mut buf = vec![0u8; 65536];
                            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                                match sock.recv_from(&mut buf) {
                                    Ok((n, from)) => {
                                        if let Some(a) = state.handle(&buf[..n]) {
                                            if let Err(e) = sock.send_to(&a, from) {
                                                state.reasons.push(format!("send to {from}: {e}"));
                                                break;
                                            }
                                        }
                                        if state.closed {
                                            break;
                                        }
                                    }
                                    Err(e) if crate::peers::is_timeout(&e) => {}
                                    Err(e) => {
                                        state.reasons.push(format!("receive: {e}"));
                                        break;
                                    }
                                }
                            }
                            state
                        })?;
                (args, thread, None)
            }
            Backend::Tap { queues } => {
                let max_frame = self.max_frame;
                let (tx, rx) = std::sync::mpsc::channel();
                let stop2 = stop.clone();
                let thread = std::thread::Builder::new()
                    .name("net-echo-tap".into())
                    .spawn(move || {
                        let sock = match tap::enter_and_open(queues, max_frame) {
                            Ok(s) => {
                                let _ = tx.send(Ok(tap::own_netns()));
                                s
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e));
                                return state;
                            }
                        };
                        let mut buf = vec![0u8; 65536];
                        while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                            match sock.recv(&mut buf) {
                                Ok(Some(n)) => {
                                    if let Some(a) = state.handle(&buf[..n]) {
                                        if let Err(e) = sock.send(&a) {
                                            state.reasons.push(format!("send on the tap: {e}"));
                                            break;
                                        }
                                    }
                                    if state.closed {
                                        break;
                                    }
                                }
                                Ok(None) => {}
                                Err(e) => {
                                    state.reasons.push(format!("receive on the tap: {e}"));
                                    break;
                                }
                            }
                        }
                        state
                    })?;
                let ns = rx
                    .recv_timeout(Duration::from_secs(10))
                    .map_err(|_| io::Error::other("the tap peer did not start in 10 s"))??;
                let args = vec![
                    "-netdev".to_string(),
                    format!(
                        "tap,id={},ifname={TAP_NAME},script=no,downscript=no,vhost=off,queues={queues}",
                        self.netdev
                    ),
                ];
                (args, thread, Some(ns))
            }
        };
        Ok(Box::new(RunningEcho {
            name: self.name(),
            args,
            netns,
            stop,
            thread: Some(thread),
            deadline,
        }))
    }
}

/// SO_RCVBUF (the kernel doubles and caps it).
fn set_receive_buffer(sock: &UdpSocket, bytes: libc::c_int) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket and an int option of the size given.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

struct RunningEcho {
    name: String,
    args: Vec<String>,
    netns: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<EchoState>>,
    deadline: Instant,
}

impl Peer for RunningEcho {
    fn qemu_args(&self) -> Vec<String> {
        self.args.clone()
    }

    fn netns(&self) -> Option<PathBuf> {
        self.netns.clone()
    }

    fn finish(mut self: Box<Self>, end: &PeerEnd<'_>) -> PeerOutcome {
        let mut out = PeerOutcome::new(self.name.clone());
        self.stop.store(true, Ordering::SeqCst);
        let Some(thread) = self.thread.take() else {
            return out;
        };
        // The thread looks at the flag every POLL: a second is plenty.
        let limit = (Instant::now() + Duration::from_secs(2)).max(self.deadline);
        while !thread.is_finished() && Instant::now() < limit {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !thread.is_finished() {
            out.reasons
                .push("the echo thread did not stop within 2 s".to_string());
            return out;
        }
        let state = match thread.join() {
            Ok(s) => s,
            Err(_) => {
                out.reasons.push("the echo thread panicked".to_string());
                return out;
            }
        };
        state.report(&mut out);
        // The firmware says its frames went through: the peer must have seen them.
        let echo_ran = end
            .tap
            .result("net.echo")
            .is_some_and(|r| r.ok && !r.is_skip());
        if end.complete && echo_ran && state.received == 0 {
            out.reasons
                .push("net.echo passed, but no frame reached the peer".to_string());
        }
        out
    }
}

/// What the peer saw and did.
struct EchoState {
    seed: u64,
    max_frame: usize,
    guest: Mac,
    misbehaviour: Misbehaviour,
    received: u64,
    bytes: u64,
    answered: u64,
    dropped: u64,
    other: u64,
    seen: HashSet<(u16, u32)>,
    first: Option<Instant>,
    last: Option<Instant>,
    closed: bool,
    notes: Vec<String>,
    reasons: Vec<String>,
    expected: Vec<u8>,
}

impl EchoState {
    fn new(seed: u64, guest: Mac, misbehaviour: Misbehaviour, max_frame: usize) -> Self {
        EchoState {
            seed,
            max_frame,
            guest,
            misbehaviour,
            received: 0,
            bytes: 0,
            answered: 0,
            dropped: 0,
            other: 0,
            seen: HashSet::new(),
            first: None,
            last: None,
            closed: false,
            notes: Vec::new(),
            reasons: Vec::new(),
            expected: Vec::new(),
        }
    }

    /// Checks one frame from the guest; returns the answer to send.
    fn handle(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        let Some((EchoKind::Frame, pair, seq)) = echo_id(frame) else {
            self.other += 1;
            return None;
        };
        let now = Instant::now();
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.received += 1;
        self.bytes += frame.len() as u64;
        // From the guest's address, or the other one or the group
        // net.filter uses.
        let (other, group) = (alternate_mac(self.guest), group_mac(self.guest));
        let src = if frame[6..12] == other {
            other
        } else if frame[6..12] == group {
            group
        } else {
            self.guest
        };
        echo_frame(
            self.seed,
            src,
            pair,
            seq,
            self.max_frame,
            &mut self.expected,
        );
        if let Some(d) = first_difference(&self.expected, frame) {
            if self.reasons.len() < 5 {
                self.reasons.push(format!(
                    "pair {pair} frame {seq} ({} bytes, {} expected) from the guest: {d} (seed={:#x}, guest {})",
                    frame.len(),
                    self.expected.len(),
                    self.seed,
                    MacText(self.guest)
                ));
            }
            return None;
        }
        if !self.seen.insert((pair, seq)) && self.reasons.len() < 5 {
            self.reasons
                .push(format!("pair {pair} frame {seq} came twice"));
        }
        let mut answer = Vec::with_capacity(frame.len());
        answer_of(frame, &mut answer);
        match self.misbehaviour {
            Misbehaviour::Drop { pair: p, seq: s } if (p, s) == (pair, seq) => {
                self.dropped += 1;
                self.notes
                    .push(format!("dropped pair {pair} frame {seq} on purpose"));
                return None;
            }
            Misbehaviour::Flip {
                pair: p,
                seq: s,
                offset,
            } if (p, s) == (pair, seq) && offset < answer.len() => {
                answer[offset] ^= 1;
                self.notes.push(format!(
                    "flipped byte {offset} of the answer to pair {pair} frame {seq} on purpose"
                ));
            }
            Misbehaviour::Broadcast { pair: p, seq: s } if (p, s) == (pair, seq) => {
                answer[..6].copy_from_slice(&[0xff; 6]);
                self.notes.push(format!(
                    "sent the answer to pair {pair} frame {seq} to the broadcast address on purpose"
                ));
            }
            Misbehaviour::CloseAfter { answers } if self.answered >= answers => {
                self.closed = true;
                self.notes.push(format!(
                    "closed on purpose after {answers} answers, at pair {pair} frame {seq}"
                ));
                return None;
            }
            _ => {}
        }
        self.answered += 1;
        Some(answer)
    }

    fn report(&self, out: &mut PeerOutcome) {
        let secs = match (self.first, self.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        let rate = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        out.lines.push(format!(
            "{} frames received ({} bytes), each as generated for seed={:#x}; {} answered, {} dropped, {} other frames; {:.0} frames/s, {:.0} KiB/s",
            self.received,
            self.bytes,
            self.seed,
            self.answered,
            self.dropped,
            self.other,
            rate(self.received),
            rate(self.bytes) / 1024.0
        ));
        out.lines.extend(self.notes.iter().cloned());
        out.reasons.extend(self.reasons.iter().cloned());
        out.figures.extend([
            ("frames_received".to_string(), self.received as f64),
            ("bytes_received".to_string(), self.bytes as f64),
            ("frames_answered".to_string(), self.answered as f64),
            ("frames_dropped".to_string(), self.dropped as f64),
            ("frames_per_s".to_string(), rate(self.received)),
            ("bytes_per_s".to_string(), rate(self.bytes)),
        ]);
    }
}

/// The tap back-end's namespace and packet socket.
mod tap {
    use super::TAP_NAME;
    use std::ffi::CString;
    use std::io;
    use std::path::PathBuf;

    const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
    const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
    const IFF_TAP: libc::c_short = 0x0002;
    const IFF_NO_PI: libc::c_short = 0x1000;
    const IFF_MULTI_QUEUE: libc::c_short = 0x0100;
    const ETH_P_ALL: u16 = 0x0003;
    const PACKET_OUTGOING: u8 = 4;

    fn last(what: &str) -> io::Error {
        let e = io::Error::last_os_error();
        io::Error::new(e.kind(), format!("{what}: {e}"))
    }

    fn ifreq(flags: libc::c_short) -> libc::ifreq {
        // SAFETY: ifreq is plain data; all zeroes is a valid value.
        let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in r.ifr_name.iter_mut().zip(TAP_NAME.bytes()) {
            *d = s as libc::c_char;
        }
        r.ifr_ifru.ifru_flags = flags;
        r
    }

    /// This thread's network namespace, as QEMU is to join it.
    pub fn own_netns() -> PathBuf {
        // SAFETY: getpid and gettid have no preconditions.
        let (pid, tid) = unsafe { (libc::getpid(), libc::gettid()) };
        PathBuf::from(format!("/proc/{pid}/task/{tid}/ns/net"))
    }

    /// A packet socket on the tap.
    pub struct Packet(libc::c_int);

    impl Drop for Packet {
        fn drop(&mut self) {
            // SAFETY: the descriptor is ours and closed once.
            unsafe { libc::close(self.0) };
        }
    }

    impl Packet {
        /// A frame that came in from the guest (our own, going out, are
        /// passed over); None when nothing came within the timeout.
        pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
            loop {
                // SAFETY: plain data, all zeroes valid.
                let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                // SAFETY: buf and from are valid for the lengths given.
                let n = unsafe {
                    libc::recvfrom(
                        self.0,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        (&mut from as *mut libc::sockaddr_ll).cast(),
                        &mut len,
                    )
                };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    return if crate::peers::is_timeout(&e) {
                        Ok(None)
                    } else {
                        Err(e)
                    };
                }
                if from.sll_pkttype != PACKET_OUTGOING {
                    return Ok(Some(n as usize));
                }
            }
        }

        pub fn send(&self, frame: &[u8]) -> io::Result<()> {
            // SAFETY: frame is valid for its length.
            let n = unsafe { libc::send(self.0, frame.as_ptr().cast(), frame.len(), 0) };
            if n < 0 {
                return Err(last("send"));
            }
            Ok(())
        }
    }

    fn write_sysctl(path: &str, value: &str) -> io::Result<()> {
        std::fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
    }

    /// Moves this thread into a new network namespace, makes the
    /// multi-queue tap there (persistent, for QEMU to attach its queues),
    /// brings it up and opens a packet socket on it.
    pub fn enter_and_open(_queues: u16, max_frame: usize) -> io::Result<Packet> {
        // SAFETY: unshare affects only this thread's namespaces.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return Err(last("unshare(CLONE_NEWNET)"));
        }
        // The kernel would send IPv6 neighbour discovery and MLD frames
        // of its own through the tap: none in this namespace.
        for conf in ["default", "all"] {
            let _ = write_sysctl(&format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1");
        }
        let tun = CString::new("/dev/net/tun").unwrap_or_default();
        // SAFETY: a valid C string.
        let fd = unsafe { libc::open(tun.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(last("open /dev/net/tun"));
        }
        let mut r = ifreq(IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE);
        // SAFETY: fd is ours; r is a valid ifreq.
        let ok = unsafe { libc::ioctl(fd, TUNSETIFF, &mut r) } == 0
            // SAFETY: as above; 1 makes the tap outlive this descriptor.
            && unsafe { libc::ioctl(fd, TUNSETPERSIST, 1 as libc::c_ulong) } == 0;
        let err = (!ok).then(|| last("TUNSETIFF/TUNSETPERSIST"));
        // SAFETY: ours, closed once: the tap stays (persistent) without
        // this queue, so every frame the kernel sends goes to QEMU's.
        unsafe { libc::close(fd) };
        if let Some(e) = err {
            return Err(e);
        }
        // SAFETY: plain socket call.
        let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if s < 0 {
            return Err(last("socket(AF_INET)"));
        }
        // The tap's MTU, the frames' (the kernel refuses longer ones we send).
        let mut m = ifreq(0);
        m.ifr_ifru.ifru_mtu = max_frame.saturating_sub(14).max(68) as libc::c_int;
        // SAFETY: s is ours; m a valid ifreq with the MTU set.
        let mut ok = unsafe { libc::ioctl(s, libc::SIOCSIFMTU, &mut m) } == 0;
        let mut r = ifreq(0);
        // SAFETY: s is ours; r a valid ifreq.
        ok = ok && unsafe { libc::ioctl(s, libc::SIOCGIFFLAGS, &mut r) } == 0;
        if ok {
            // SAFETY: the union's flags member was just read.
            unsafe { r.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
            // SAFETY: as above.
            ok = unsafe { libc::ioctl(s, libc::SIOCSIFFLAGS, &mut r) } == 0;
        }
        let err = (!ok).then(|| last("bringing the tap up"));
        // SAFETY: ours, closed once.
        unsafe { libc::close(s) };
        if let Some(e) = err {
            return Err(e);
        }
        let name = CString::new(TAP_NAME).unwrap_or_default();
        // SAFETY: a valid C string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(last("if_nametoindex"));
        }
        // SAFETY: plain socket call.
        let p = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(ETH_P_ALL.to_be()),
            )
        };
        if p < 0 {
            return Err(last("socket(AF_PACKET)"));
        }
        let packet = Packet(p);
        // SAFETY: plain data, all zeroes valid.
        let mut at: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        at.sll_family = libc::AF_PACKET as u16;
        at.sll_protocol = ETH_P_ALL.to_be();
        at.sll_ifindex = index as i32;
        // SAFETY: at is a valid sockaddr_ll of the size given.
        let bound = unsafe {
            libc::bind(
                p,
                (&at as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if bound != 0 {
            return Err(last("bind on the tap"));
        }
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: super::POLL.as_micros() as libc::suseconds_t,
        };
        // SAFETY: tv is a valid timeval of the size given.
        let set = unsafe {
            libc::setsockopt(
                p,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(last("SO_RCVTIMEO"));
        }
        Ok(packet)
    }
}

/// Whether this machine lets the runner make a network namespace with a
/// multi-queue tap (a throwaway thread tries); the error says why not.
pub fn tap_namespace_available() -> Result<(), String> {
    std::thread::spawn(|| tap::enter_and_open(2, MAX_FRAME).map(drop))
        .join()
        .map_err(|_| "the probe thread panicked".to_string())?
        .map_err(|e| e.to_string())
}

/// Whether this QEMU takes the back-end `-netdev <netdev>` (e.g.
/// `user,id=probe,restrict=on`): a QEMU without a machine is started with
/// it, stopped, and told to quit over QMP; the error is QEMU's word. (Not
/// `-netdev help`: a QEMU unpacked beside the system's one aborts there,
/// loading the system's modules.)
pub fn netdev_offered(scenario: &Scenario, netdev: &str) -> Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(&scenario.qemu);
    if let Some(dir) = &scenario.data_dir {
        cmd.arg("-L").arg(dir);
    }
    let mut child = cmd
        .args(["-machine", "none", "-nodefaults", "-display", "none", "-S"])
        .args(["-qmp", "stdio", "-netdev", netdev])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", scenario.qemu.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // QEMU may have exited already (an unknown back-end): no matter.
        let _ = stdin.write_all(b"{\"execute\": \"qmp_capabilities\"}\n{\"execute\": \"quit\"}\n");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => break None,
        }
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "QEMU with -netdev {netdev} did not quit within 10 s"
        ));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "this QEMU does not take -netdev {netdev}: {}",
            err.lines()
                .find(|l| l.contains("netdev") || l.contains("Parameter"))
                .or_else(|| err.lines().next())
                .unwrap_or("(no message)")
        ))
    }
}

/// The probe arguments of the back-ends scenarios use.
pub const USER_PROBE: &str = "user,id=probe,restrict=on";
pub const SOCKET_UDP_PROBE: &str = "socket,id=probe,udp=127.0.0.1:9,localaddr=127.0.0.1:0";
pub const DGRAM_PROBE: &str =
    "dgram,id=probe,local.type=inet,local.host=127.0.0.1,local.port=0,remote.type=inet,remote.host=127.0.0.1,remote.port=9";

/// Net devices in a scenario.
pub trait NetScenario {
    /// A `virtio-net-ccw` at `bus` with `mac=` (and `host_mtu=`, `mq=on`
    /// as `echo` says), on a back-end the runner's echo peer makes, told
    /// to the firmware as `BUS:MAC:echo[:pairs=N][:mtu=N]`.
    fn net_echo(self, bus: &str, mac: Mac, echo: Echo) -> Self;
    /// A `virtio-net-ccw` at `bus` with `mac=` on QEMU's user-mode
    /// network (`restrict=on`), told as `BUS:MAC:user`.
    fn net_user(self, bus: &str, mac: Mac) -> Self;
    /// Has the host set the link of the net device at `bus` down, then up
    /// (QMP `set_link`) at the firmware's `net.link` lines.
    fn net_link(self, bus: &str) -> Self;
}

fn net_device(
    mut s: Scenario,
    bus: &str,
    mac: Mac,
    peer: NetPeer,
    (pairs, mtu, packed, ctrl_off): (u16, Option<u16>, bool, u8),
    backend_args: Vec<String>,
) -> Scenario {
    let bus_id = match bus.parse() {
        Ok(b) => b,
        Err(e) => {
            s.errors.push(format!("net device: {e}"));
            return s;
        }
    };
    let mut d = CcwDevice::new("virtio-net-ccw", bus_id, "net");
    let netdev = format!("{}-net", d.id);
    d.properties = vec![
        ("netdev".to_string(), netdev),
        ("mac".to_string(), MacText(mac).to_string()),
    ];
    if pairs > 1 {
        d.properties.push(("mq".to_string(), "on".to_string()));
    }
    if let Some(m) = mtu {
        d.properties.push(("host_mtu".to_string(), m.to_string()));
    }
    if packed {
        d.properties.push(("packed".to_string(), "on".to_string()));
    }
    for (word, bit, _) in CTRL_OFF {
        if ctrl_off & bit != 0 {
            d.properties.push((word.to_string(), "off".to_string()));
        }
    }
    d.backend_args = backend_args;
    s.expected_devices
        .get_or_insert_with(Vec::new)
        .push(d.entry());
    s.ccw_devices.push(d);
    s.nets.push(NetConfig {
        bus: bus_id,
        mac,
        peer,
        pairs,
        link: false,
        mtu,
        ctrl_off,
    });
    s
}

impl NetScenario for Scenario {
    fn net_echo(self, bus: &str, mac: Mac, echo: Echo) -> Self {
        let pairs = match echo.backend {
            Backend::Dgram | Backend::SocketUdp => 1,
            Backend::Tap { queues } => queues,
        };
        let s = net_device(
            self,
            bus,
            mac,
            NetPeer::Echo,
            (pairs, echo.mtu, echo.packed, echo.ctrl_off),
            Vec::new(),
        );
        let max_frame = s.nets.last().map_or(MAX_FRAME, NetConfig::max_frame);
        let netdev = format!("ccw-{bus}-net");
        s.peer(EchoPeer {
            netdev,
            guest: mac,
            backend: echo.backend,
            misbehaviour: echo.misbehaviour,
            max_frame,
        })
    }

    fn net_user(self, bus: &str, mac: Mac) -> Self {
        let netdev = format!("ccw-{bus}-net");
        let args = vec![
            "-netdev".to_string(),
            format!("user,id={netdev},restrict=on"),
        ];
        net_device(self, bus, mac, NetPeer::User, (1, None, false, 0), args)
    }

    fn net_link(mut self, bus: &str) -> Self {
        let Some(n) = self.nets.iter_mut().find(|n| n.bus.to_string() == bus) else {
            self.errors
                .push(format!("net_link: no net device at {bus}"));
            return self;
        };
        n.link = true;
        let id = format!("ccw-{bus}");
        let [down, up] = NET_LINK_READY;
        self.qmp_on_line(
            down,
            &format!(r#"{{"execute": "set_link", "arguments": {{"name": "{id}", "up": false}}}}"#),
        )
        .qmp_on_line(
            up,
            &format!(r#"{{"execute": "set_link", "arguments": {{"name": "{id}", "up": true}}}}"#),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST: Mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    fn frame(pair: u16, seq: u32) -> Vec<u8> {
        let mut f = Vec::new();
        echo_frame(9, GUEST, pair, seq, MAX_FRAME, &mut f);
        f
    }

    #[test]
    fn answers_checks_and_misbehaviours() {
        let mut s = EchoState::new(9, GUEST, Misbehaviour::None, MAX_FRAME);
        let f = frame(0, 3);
        let mut want = Vec::new();
        answer_of(&f, &mut want);
        assert_eq!(s.handle(&f), Some(want.clone()));
        assert!(s.reasons.is_empty());
        // A flipped byte from the guest: named, not answered.
        let mut bad = frame(0, 4);
        bad[30] ^= 0x80;
        assert_eq!(s.handle(&bad), None);
        assert!(s.reasons[0].contains("pair 0 frame 4") && s.reasons[0].contains("byte 30"));
        // The same frame twice is named; other frames are counted.
        s.handle(&f);
        assert!(s.reasons[1].contains("came twice"));
        assert_eq!(s.handle(&[0u8; 60]), None);
        assert_eq!(s.other, 1);

        let mut flip = EchoState::new(
            9,
            GUEST,
            Misbehaviour::Flip {
                pair: 0,
                seq: 3,
                offset: 25,
            },
            MAX_FRAME,
        );
        let a = flip.handle(&f).unwrap();
        assert_eq!(first_difference(&want, &a).unwrap().offset, 25);
        let mut drop = EchoState::new(9, GUEST, Misbehaviour::Drop { pair: 0, seq: 3 }, MAX_FRAME);
        assert_eq!(drop.handle(&f), None);
        assert_eq!(drop.dropped, 1);
        assert!(drop.handle(&frame(0, 5)).is_some());
        let mut bcast = EchoState::new(
            9,
            GUEST,
            Misbehaviour::Broadcast { pair: 0, seq: 3 },
            MAX_FRAME,
        );
        assert_eq!(bcast.handle(&f).unwrap()[..6], [0xff; 6]);
        // Frames from the alternate address are checked as from it.
        let mut alt = Vec::new();
        echo_frame(9, alternate_mac(GUEST), 0, 8, MAX_FRAME, &mut alt);
        assert!(s.handle(&alt).is_some());
        assert_eq!(s.reasons.len(), 2, "{:?}", s.reasons);
        let mut close =
            EchoState::new(9, GUEST, Misbehaviour::CloseAfter { answers: 1 }, MAX_FRAME);
        assert!(close.handle(&frame(0, 0)).is_some());
        assert_eq!(close.handle(&frame(0, 1)), None);
        assert!(close.closed);
    }

    #[test]
    fn scenarios_tell_the_firmware() {
        let s = Scenario::new("n")
            .net_echo("fe.0.0002", GUEST, Echo::dgram())
            .net_link("fe.0.0002");
        let line = s.command_line();
        assert!(
            line.contains("nets=fe.0.0002:52-54-00-12-34-56:echo:link"),
            "{line}"
        );
        let d = &s.ccw_devices[0];
        assert!(d
            .device_arg()
            .contains("netdev=ccw-fe.0.0002-net,mac=52:54:00:12:34:56"));
        assert_eq!(s.line_commands.len(), 2);
        let u = Scenario::new("u").net_user("fe.0.0003", GUEST);
        assert!(u.ccw_devices[0]
            .backend_args
            .iter()
            .any(|a| a == "user,id=ccw-fe.0.0003-net,restrict=on"));
        let bad = Scenario::new("b").net_link("fe.0.0009");
        assert!(bad.validate().is_err());
    }
}
