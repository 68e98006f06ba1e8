//! A throwaway Redis for the cluster tests and benchmarks (this crate's feature
//! `test-redis`): Debian's `redis-server` (scripts/deps
//! installs it) on a free loopback port, with no persistence, so a restart starts it
//! empty — the harshest restart a cluster meets. Stopped when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::store::test_postgres::wait_for_line;

/// How long the server may take to say it accepts connections.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Ports tried before giving up (another process may take a free port before we do).
const PORT_ATTEMPTS: usize = 3;

/// A running `redis-server`.
pub struct TestRedis {
    child: Child,
    port: u16,
}

impl TestRedis {
    /// Starts one, panicking with its log when it cannot (a test fixture).
    pub fn start() -> TestRedis {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match start_on(port) {
                Ok(child) => return TestRedis { child, port },
                Err(why) => last = why,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// Its process id (benchmarks count its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: everything it held is gone) and starts it again, empty, on the
    /// same port.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = start_on(self.port)
            .unwrap_or_else(|why| panic!("redis-server did not start again: {why}"));
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Starts `redis-server` on `port` and waits (bounded) for its log to say it is ready.
fn start_on(port: u16) -> Result<Child, String> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(["--dir", &std::env::temp_dir().to_string_lossy()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("redis-server (install Debian's redis-server: scripts/deps): {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    wait_for_line(
        &mut child,
        stdout,
        "Ready to accept connections",
        READY_TIMEOUT,
    )?;
    Ok(child)
}
