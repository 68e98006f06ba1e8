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
