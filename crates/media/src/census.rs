//! Counts of what media has running: peer connections, our tasks and our threads.
//!
//! A call that ended must leave nothing behind; tests and the call-cycle benchmark read
//! these counts (with the process's socket count and tokio's task count) to prove it.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

static PEERS: AtomicUsize = AtomicUsize::new(0);
static TASKS: AtomicUsize = AtomicUsize::new(0);
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// What is alive right now, process-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Census {
    pub peer_connections: usize,
    pub tasks: usize,
    pub threads: usize,
}

pub fn census() -> Census {
    Census {
        peer_connections: PEERS.load(Ordering::SeqCst),
        tasks: TASKS.load(Ordering::SeqCst),
        threads: THREADS.load(Ordering::SeqCst),
    }
}

/// UDP sockets this process has open (media's: signaling is TCP). Linux only: it joins
/// `/proc/self/fd` with `/proc/self/net/udp{,6}`; 0 elsewhere.
pub fn udp_sockets() -> usize {
    let udp_inodes: std::collections::HashSet<String> =
        ["/proc/self/net/udp", "/proc/self/net/udp6"]
            .iter()
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .lines()
                    .skip(1)
                    .filter_map(|line| line.split_whitespace().nth(9).map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .collect();
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    l.strip_prefix("socket:[")
                        .and_then(|s| s.strip_suffix(']'))
                        .map(str::to_owned)
                })
                .filter(|inode| udp_inodes.contains(inode))
                .count()
        })
        .unwrap_or(0)
}

/// Held by a live peer connection.
pub(crate) struct PeerGuard(());

impl PeerGuard {
    pub(crate) fn new() -> PeerGuard {
        PeerGuard::count(&PEERS)
    }

    fn count(counter: &'static AtomicUsize) -> PeerGuard {
        counter.fetch_add(1, Ordering::SeqCst);
        PeerGuard(())
    }
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        PEERS.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Counted(&'static AtomicUsize);

impl Counted {
    fn new(counter: &'static AtomicUsize) -> Counted {
        counter.fetch_add(1, Ordering::SeqCst);
        Counted(counter)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Wraps a task's future so that it is counted until it finishes or is dropped.
pub(crate) fn task<F: Future>(f: F) -> impl Future<Output = F::Output> {
    let guard = Counted::new(&TASKS);
    async move {
        let _guard = guard;
        f.await
    }
}

/// Starts a named thread that is counted until its body returns.
pub(crate) fn thread<F: FnOnce() + Send + 'static>(
    name: &str,
    f: F,
) -> std::thread::JoinHandle<()> {
    let guard = Counted::new(&THREADS);
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _guard = guard;
            f()
        })
        .expect("spawn a media thread")
}
