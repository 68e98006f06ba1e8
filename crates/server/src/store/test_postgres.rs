//! A throwaway PostgreSQL server for tests (this crate's, with feature `test-postgres`
//! the integration suite's): Debian's `postgresql-15` binaries on a data directory of
//! its own under the temporary folder, on a free loopback port, stopped and removed
//! when dropped.
//!
//! `initdb` refuses to run as root; as root the server runs as the package's
//! `postgres` user (its data directory handed to it). The binaries are looked for in
//! `$TINCAN_PG_BIN`, then `/usr/lib/postgresql/15/bin` (scripts/deps installs them).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the server may take to say it accepts connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Ports tried before giving up (another process may take a free port before we do).
const PORT_ATTEMPTS: usize = 3;

/// A running PostgreSQL server.
pub struct TestPostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    child: Child,
}

impl TestPostgres {
    /// Starts one, panicking with the reason when it cannot (a test fixture).
    pub fn start() -> TestPostgres {
        let bin = bin_dir();
        let dir = fresh_dir();
        let data = dir.join("data");
        run(
            as_owner(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"])
                .args(["--locale=C", "--no-sync", "--no-instructions"]),
            "initdb",
        );
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match start_server(&bin, &dir, port) {
                Ok(child) => {
                    return TestPostgres {
                        dir,
                        bin,
                        port,
                        child,
                    }
                }
                Err(why) => last = why,
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("PostgreSQL did not start: {last}");
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (a fast shutdown: connections are cut) and starts it again on
    /// the same data and port.
    pub fn restart(&mut self) {
        self.stop();
        self.child = start_server(&self.bin, &self.dir, self.port)
            .unwrap_or_else(|why| panic!("PostgreSQL did not start again: {why}"));
    }

    fn stop(&mut self) -> bool {
        let stopped = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["stop", "-m", "fast", "-w", "-t", "10"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        stopped
    }

    /// Creates database `name` and returns its URL (user `postgres`, no password).
    pub fn create_database(&self, name: &str) -> String {
        run(
            Command::new(self.bin.join("createdb"))
                .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
                .arg(self.port.to_string())
                .arg(name),
            "createdb",
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bin_dir() -> PathBuf {
    let dir = std::env::var_os("TINCAN_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    assert!(
        dir.join("postgres").exists(),
        "no PostgreSQL server in {} (install Debian's postgresql-15: scripts/deps, or set TINCAN_PG_BIN)",
        dir.display()
    );
    dir
}

#[cfg(unix)]
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

/// A command run as the owner of the data directory: `postgres` when we are root.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn fresh_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tincan-pg-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("make the data directory's folder");
    if is_root() {
        run(Command::new("chown").arg("postgres:").arg(&dir), "chown");
    }
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the server on `port` and waits (bounded) for its log to say it is ready.
fn start_server(bin: &Path, dir: &Path, port: u16) -> Result<Child, String> {
    let mut child = as_owner(&bin.join("postgres"))
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-k")
        .arg(dir)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        // A test database is thrown away: no need to survive a power cut.
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("postgres: {e}"))?;
    let stderr = child.stderr.take().expect("piped");
    wait_for_line(
        &mut child,
        stderr,
        "database system is ready to accept connections",
        READY_TIMEOUT,
    )?;
    Ok(child)
}

/// Reads `log` (a child's output) until a line contains `ready`, at most `limit`; the
/// log is read to its end on a thread of its own afterwards (a full pipe would stop the
/// child). On failure the child is killed and the log so far is the error.
pub fn wait_for_line(
    child: &mut Child,
    log: impl std::io::Read + Send + 'static,
    ready: &str,
    limit: Duration,
) -> Result<(), String> {
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(log).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(ready) => return Ok(()),
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{e:?} before it was ready; its log:\n{seen}"));
            }
        }
    }
}
