//! A fixed pool of threads for password hashing (Argon2id, 19 MiB of memory per hash),
//! and the memory each hash works in.
//!
//! Hashing on tokio's blocking pool let every concurrent sign-in take its own thread
//! and its own 19 MiB block (48 concurrent sign-ins: ~700 MiB). Here a fixed number of
//! threads hash and at most `queue` jobs wait; past that a job is refused at once
//! ([`Busy`]) so the caller can answer "busy, retry" instead of growing. Peak memory is
//! about `threads` × 19 MiB.
//!
//! The block is mapped from the kernel ([`Scratch`]) and kept by its thread only while
//! more jobs wait: a thread that finishes a hash with no job waiting unmaps its block,
//! so an idle server holds none. Through malloc the memory never returned: glibc
//! raises its mmap threshold after the first such free and keeps later blocks in its
//! arenas (the issue measured 1.27 GB after 200 registrations; a block kept per thread
//! for ever still left ~49 MB). Mapping a fresh block for every hash instead would cost
//! ~5 ms each (the kernel zeroing 19 MiB), a quarter of a hash on these machines.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Every thread is busy and the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

type Job = Box<dyn FnOnce() + Send>;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct HashPool {
    jobs: SyncSender<Job>,
    /// Jobs handed in and not yet taken by a thread (counted before they are sent, so
    /// never less than the queue holds).
    waiting: Arc<AtomicUsize>,
    threads: usize,
    queue: usize,
}

impl HashPool {
    /// `threads` hashing threads (0: one per core) and a queue of `queue` waiting jobs.
    pub fn new(threads: usize, queue: usize) -> HashPool {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            threads
        };
        // A rendezvous channel (capacity 0) would refuse whenever no thread happens to
        // be waiting at that instant; the queue is the jobs that may wait.
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let waiting = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let rx = rx.clone();
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name(format!("tincan-hash-{i}"))
                .spawn(move || loop {
                    // With no job waiting, this thread's scratch memory goes back to the
                    // kernel before it waits (a job arriving just now maps it again).
                    if waiting.load(Ordering::Acquire) == 0 {
                        release_scratch();
                    }
                    // The lock is held only while waiting for the next job.
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => {
                            waiting.fetch_sub(1, Ordering::AcqRel);
                            job()
                        }
                        Err(_) => return, // every sender is gone: the server stopped
                    }
                })
                .expect("a hashing thread starts");
        }
        HashPool {
            jobs: tx,
            waiting,
            threads,
            queue,
        }
    }

    /// Threads, and jobs that may wait.
    pub fn size(&self) -> (usize, usize) {
        (self.threads, self.queue)
    }

    /// Runs `f` on a hashing thread, or refuses at once when the pool is full.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.waiting.fetch_add(1, Ordering::AcqRel);
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                return Err(Busy);
            }
        }
        // The job always runs and sends, unless it panicked: then count it as busy.
        rx.await.map_err(|_| Busy)
    }
}

thread_local! {
    /// This thread's scratch memory, kept between hashes while jobs wait.
    static SCRATCH: std::cell::RefCell<Option<Scratch>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` on `blocks` blocks of this thread's scratch memory (mapped if it has none or
/// too few); `None` if the kernel refuses the memory.
pub(crate) fn with_scratch<T>(
    blocks: usize,
    f: impl FnOnce(&mut [argon2::Block]) -> T,
) -> Option<T> {
    SCRATCH.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|s| s.blocks < blocks) {
            *slot = None;
            *slot = Some(Scratch::map(blocks)?);
        }
        let scratch = slot.as_mut().expect("mapped above");
        Some(f(&mut scratch.blocks()[..blocks]))
    })
}

/// Gives this thread's scratch memory back to the kernel.
fn release_scratch() {
    SCRATCH.with(|cell| cell.borrow_mut().take());
}

/// Argon2 working memory, mapped from the kernel and unmapped when dropped.
pub(crate) struct Scratch {
    ptr: std::ptr::NonNull<argon2::Block>,
    blocks: usize,
}

impl Scratch {
    /// `blocks` zeroed blocks; `None` if the kernel refuses the mapping (or `blocks` is 0).
    pub(crate) fn map(blocks: usize) -> Option<Scratch> {
        let len = blocks.checked_mul(std::mem::size_of::<argon2::Block>())?;
        if len == 0 {
            return None;
        }
        // SAFETY: an anonymous private mapping with no address hint touches no existing
        // memory; the result is checked for MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Scratch {
            ptr: std::ptr::NonNull::new(ptr.cast())?,
            blocks,
        })
    }

    /// The blocks, for Argon2.
    pub(crate) fn blocks(&mut self) -> &mut [argon2::Block] {
        // SAFETY: the mapping is `blocks` × 1 KiB long, page-aligned (Block needs 64),
        // zero-filled by the kernel (all-zero words are a valid Block), and owned by
        // `self`, borrowed mutably here.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.blocks) }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`, which nothing borrows once
        // `self` is dropped.
        unsafe {
            libc::munmap(
                self.ptr.as_ptr().cast(),
                self.blocks * std::mem::size_of::<argon2::Block>(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_pool_refuses_at_once_and_runs_the_rest() {
        let pool = HashPool::new(1, 1);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        // One job holds the only thread...
        let first = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(move || {
                    let _ = started_tx.send(());
                    go_rx.recv().unwrap()
                })
                .await
            }
        });
        started_rx.await.unwrap();
        // ...one waits in the queue's only place...
        let (queued_tx, queued_rx) = tokio::sync::oneshot::channel::<()>();
        pool.waiting.fetch_add(1, Ordering::AcqRel);
        assert!(pool
            .jobs
            .try_send(Box::new(move || {
                let _ = queued_tx.send(());
            }))
            .is_ok());
        // ...so the next is refused at once.
        assert_eq!(pool.run(|| 3).await, Err(Busy));
        go_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(()));
        // Once the queued job has run (not merely once the first is done: the queue may
        // still hold it), there is room again.
        queued_rx.await.unwrap();
        assert_eq!(pool.run(|| 4).await, Ok(4));
    }

    /// The scratch memory is the kernel's again once a hash is over: /proc/self/maps
    /// covers its 19 MiB while it lives and not after. (Another test thread may map
    /// something small into the hole at once, never all of it.)
    #[test]
    fn scratch_memory_is_unmapped_when_dropped() {
        let covered = |from: usize, to: usize| {
            std::fs::read_to_string("/proc/self/maps")
                .unwrap()
                .lines()
                .filter_map(|l| {
                    let (range, _) = l.split_once(' ')?;
                    let (a, b) = range.split_once('-')?;
                    Some((
                        usize::from_str_radix(a, 16).ok()?,
                        usize::from_str_radix(b, 16).ok()?,
                    ))
                })
                .any(|(a, b)| a <= from && to <= b)
        };
        let blocks = 19 * 1024;
        let mut s = Scratch::map(blocks).expect("19 MiB mapped");
        assert_eq!(s.blocks().len(), blocks);
        s.blocks()[blocks - 1] = argon2::Block::default();
        let from = s.ptr.as_ptr() as usize;
        let to = from + blocks * std::mem::size_of::<argon2::Block>();
        assert!(covered(from, to));
        drop(s);
        assert!(!covered(from, to));
        assert!(Scratch::map(0).is_none());
    }
}
