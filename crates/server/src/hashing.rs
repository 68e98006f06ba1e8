//! A fixed pool of threads for password hashing (Argon2id, 19 MiB of memory per hash).
//!
//! Hashing on tokio's blocking pool let every concurrent sign-in take its own thread
//! and its own 19 MiB block (48 concurrent sign-ins: ~700 MiB). Here a fixed number of
//! threads hash, each reusing its allocator's block, and at most `queue` jobs wait;
//! past that a job is refused at once ([`Busy`]) so the caller can answer "busy, retry"
//! instead of growing. Peak memory is about `threads` × 19 MiB.

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
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("tincan-hash-{i}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next job.
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // every sender is gone: the server stopped
                    }
                })
                .expect("a hashing thread starts");
        }
        HashPool {
            jobs: tx,
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
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => return Err(Busy),
        }
        // The job always runs and sends, unless it panicked: then count it as busy.
        rx.await.map_err(|_| Busy)
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
        assert!(pool.jobs.try_send(Box::new(|| {})).is_ok());
        // ...so the next is refused at once.
        assert_eq!(pool.run(|| 3).await, Err(Busy));
        go_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(()));
        assert_eq!(pool.run(|| 4).await, Ok(4));
    }
}
