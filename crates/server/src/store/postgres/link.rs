//! The store's connections to PostgreSQL: a current-thread tokio runtime on a thread of
//! its own drives them (the store's callers are on any thread, some inside another
//! runtime), and a connection found closed is opened again on its next use, so the
//! server rides out a PostgreSQL restart.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio_postgres::{AsyncMessage, Client, Config, NoTls};
use tracing::{info, warn};

use super::super::StoreError;

/// How long opening a connection may take when the URL does not say
/// (`connect_timeout`): callers wait for it, the record writer among them.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The runtime, and what it takes to open a connection.
pub struct Links {
    handle: tokio::runtime::Handle,
    config: Config,
    target: String,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    stopped: AtomicBool,
}

impl Links {
    /// Starts the runtime thread.
    pub fn start(mut config: Config, target: String) -> Result<Arc<Self>, StoreError> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Config(format!("store runtime: {e}")))?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("tincan-postgres".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
                // Dropping `rt` here ends every connection's task.
            })
            .map_err(|e| StoreError::Config(format!("store thread: {e}")))?;
        Ok(Arc::new(Self {
            handle,
            config,
            target,
            stop: Mutex::new(Some(stop)),
            stopped: AtomicBool::new(false),
        }))
    }

    /// user@host:port/db, for logs.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether the store was dropped.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Ends the runtime and with it every connection.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        if let Some(s) = self.stop.lock().expect("never poisoned").take() {
            let _ = s.send(());
        }
    }

    /// Runs `fut` on the runtime and waits for it on this thread.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| StoreError::Config("the PostgreSQL store is closed".into()))?
    }

    /// Opens a connection and drives it on the runtime. Notifications go to `changes`
    /// (dropped, ending the receiver's loop, when the connection ends).
    pub fn connect(&self, changes: Option<mpsc::Sender<String>>) -> Result<Client, StoreError> {
        let config = self.config.clone();
        let target = self.target.clone();
        self.run(async move {
            let (client, mut conn) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                let why = loop {
                    match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                        Some(Ok(AsyncMessage::Notification(n))) => {
                            if let Some(tx) = &changes {
                                let _ = tx.send(n.payload().to_owned());
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break e.to_string(),
                        None => break "closed".to_owned(),
                    }
                };
                warn!(database = %target, why, "PostgreSQL connection ended; it is opened again when next needed");
            });
            Ok(client)
        })
    }

    /// Opens `client` again if it is closed.
    pub fn reopen_if_closed(&self, client: &mut Client) -> Result<(), StoreError> {
        if client.is_closed() {
            *client = self.connect(None)?;
            info!(database = %self.target, "PostgreSQL connection opened again");
        }
        Ok(())
    }
}

/// A connection shared by concurrent readers (tokio-postgres pipelines their queries),
/// opened again when found closed.
pub struct Link {
    links: Arc<Links>,
    client: Mutex<Arc<Client>>,
}

impl Link {
    /// Opens it.
    pub fn open(links: Arc<Links>) -> Result<Self, StoreError> {
        let client = Mutex::new(Arc::new(links.connect(None)?));
        Ok(Self { links, client })
    }

    /// The connection, opened again first if it was closed.
    pub fn get(&self) -> Result<Arc<Client>, StoreError> {
        let mut c = self.client.lock().expect("never poisoned");
        if c.is_closed() {
            *c = Arc::new(self.links.connect(None)?);
            info!(database = %self.links.target(), "PostgreSQL connection opened again");
        }
        Ok(c.clone())
    }
}
