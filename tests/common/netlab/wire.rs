//! A lab link with delay, jitter and loss, in userspace: this machine's kernel has no
//! `sch_netem` (CONFIG_NET_SCH_NETEM is not set), so `tc netem` cannot do it.
//!
//! The link is a namespace of its own with two veth ends, `a` (to the home's host) and
//! `b` (to its router). A thread in that namespace reads every Ethernet frame arriving
//! on one end from an `AF_PACKET` socket and writes it out of the other end once its
//! delay has passed, unless it is chosen to be lost. Each direction is impaired alike
//! and independently. The host's and router's ends have their checksum and
//! segmentation offloads turned off (ethtool), so frames are whole and checksummed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Delay, jitter and loss of each direction of a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// Mean one-way delay.
    pub delay: Duration,
    /// Each frame's delay is uniform in `delay ± jitter`; a frame never overtakes the one
    /// before it (as behind a queue; netem would reorder), so it may wait a little longer.
    pub jitter: Duration,
    /// Share of frames dropped, in percent, chosen at random per frame.
    pub loss_percent: f64,
}

/// Frames a direction holds while they wait out their delay; beyond it, frames are
/// dropped (tail drop, like a router's buffer). At the lab's rates (≤ a few Mbit/s,
/// ≤ 200 ms) a few hundred are in flight.
const QUEUE_FRAMES: usize = 4096;
/// The longest the thread sleeps between looks at its stop flag and its queues.
const TICK: Duration = Duration::from_millis(2);
/// Largest frame read (the ends' MTU is 1500; offloads are off).
const FRAME_BYTES: usize = 2048;

/// Frames counted per direction: `[a→b, b→a]`.
#[derive(Debug, Default)]
pub struct WireCounts {
    pub forwarded: [AtomicU64; 2],
    pub lost: [AtomicU64; 2],
}

/// A running wire; stops (and joins its thread) on drop.
pub struct Wire {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub counts: Arc<WireCounts>,
}

impl Wire {
    /// Starts forwarding between interfaces `a` and `b` of namespace `ns`. `seed` makes
    /// the loss and jitter pattern repeatable.
    pub fn start(ns: &str, impairment: Impairment, seed: u64) -> Result<Wire, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(WireCounts::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ns = ns.to_owned();
        let (s, c) = (stop.clone(), counts.clone());
        let thread = std::thread::Builder::new()
            .name("netlab-wire".into())
            .spawn(move || {
                let opened = super::enter_netns(&ns)
                    .and_then(|()| Ok([PacketSocket::open("a")?, PacketSocket::open("b")?]));
                match opened {
                    Ok(ends) => {
                        let _ = ready_tx.send(Ok(()));
                        run(ends, impairment, seed, &s, &c);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| format!("wire thread: {e}"))?;
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| format!("wire did not start: {e}"))??;
        Ok(Wire {
            stop,
            thread: Some(thread),
            counts,
        })
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One end's raw socket.
struct PacketSocket(libc::c_int);

impl PacketSocket {
    fn open(ifname: &str) -> Result<PacketSocket, String> {
        let name = std::ffi::CString::new(ifname).expect("interface name");
        // SAFETY: plain libc calls on values we own; the fd is closed on drop.
        unsafe {
            let index = libc::if_nametoindex(name.as_ptr());
            if index == 0 {
                return Err(format!("no interface {ifname} in the wire's namespace"));
            }
            let proto = (libc::ETH_P_ALL as u16).to_be();
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                proto as libc::c_int,
            );
            if fd < 0 {
                return Err(format!(
                    "packet socket: {}",
                    std::io::Error::last_os_error()
                ));
            }
            let socket = PacketSocket(fd);
            let mut addr: libc::sockaddr_ll = std::mem::zeroed();
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_protocol = proto;
            addr.sll_ifindex = index as libc::c_int;
            let bound = libc::bind(
                fd,
                &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            );
            if bound != 0 {
                return Err(format!(
                    "bind a packet socket to {ifname}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            Ok(socket)
        }
    }

    /// The next frame that arrived on this end (not one we sent out of it), if any.
    fn recv(&self, buf: &mut [u8]) -> Option<usize> {
        loop {
            // SAFETY: buf and addr are valid for the lengths given.
            let (n, addr) = unsafe {
                let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                let n = libc::recvfrom(
                    self.0,
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    &mut addr as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                    &mut len,
                );
                (n, addr)
            };
            if n < 0 {
                return None;
            }
            if addr.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            return Some(n as usize);
        }
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: frame is valid for its length. A failed send is a lost frame.
        unsafe {
            libc::send(
                self.0,
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
            );
        }
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe {
            libc::close(self.0);
        }
    }
}

/// xorshift64*: enough randomness for loss and jitter, repeatable from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn run(
    ends: [PacketSocket; 2],
    imp: Impairment,
    seed: u64,
    stop: &AtomicBool,
    counts: &WireCounts,
) {
    let mut rng = Rng(seed | 1);
    let mut queues: [VecDeque<(Instant, Vec<u8>)>; 2] = [VecDeque::new(), VecDeque::new()];
    let mut buf = vec![0u8; FRAME_BYTES];
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let next_due = queues
            .iter()
            .filter_map(|q| q.front().map(|(due, _)| *due))
            .min();
        let wait = next_due
            .map(|due| due.saturating_duration_since(now))
            .unwrap_or(TICK)
            .min(TICK);
        let mut fds = [
            libc::pollfd {
                fd: ends[0].0,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: ends[1].0,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // Whole milliseconds, rounded up, so a due frame is never polled past.
        let ms = wait.as_micros().div_ceil(1000) as libc::c_int;
        // SAFETY: fds is a valid array of two pollfds.
        unsafe {
            libc::poll(fds.as_mut_ptr(), 2, ms);
        }
        let now = Instant::now();
        // Direction 0 is a→b (frames arriving on a), 1 is b→a.
        for dir in 0..2 {
            // Bounded: at most a queue's worth per turn, so both directions get served.
            for _ in 0..QUEUE_FRAMES {
                let Some(n) = ends[dir].recv(&mut buf) else {
                    break;
                };
                if rng.unit() * 100.0 < imp.loss_percent || queues[dir].len() >= QUEUE_FRAMES {
                    counts.lost[dir].fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let spread = imp.jitter.as_secs_f64() * (2.0 * rng.unit() - 1.0);
                let delay = (imp.delay.as_secs_f64() + spread).max(0.0);
                let mut due = now + Duration::from_secs_f64(delay);
                if let Some((last, _)) = queues[dir].back() {
                    due = due.max(*last);
                }
                queues[dir].push_back((due, buf[..n].to_vec()));
            }
        }
        let now = Instant::now();
        for dir in 0..2 {
            while queues[dir].front().is_some_and(|(due, _)| *due <= now) {
                let (_, frame) = queues[dir].pop_front().expect("front");
                ends[1 - dir].send(&frame);
                counts.forwarded[dir].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}
