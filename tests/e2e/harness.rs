//! Drives the real desktop app: `tauri-driver` (on free ports) → `WebKitWebDriver` →
//! `target/debug/tincan-app`, with a [`TestServer`] on `127.0.0.1:0` as its server.
//!
//! [`run`] owns the whole life cycle, so a test body only says what it proves:
//!
//! ```ignore
//! harness::run("window", |s| async move {
//!     s.app.wait_state("signin").await;
//!     assert_eq!(s.app.text_of("app-title").await, "Tincan");
//!     s.app.screenshot("signin").await;
//! });
//! ```
//!
//! Teardown happens even when the body panics or hangs: the body runs in its own task,
//! then the WebDriver session is closed (which closes the app), `tauri-driver` gets a
//! SIGTERM — never a SIGKILL, which would orphan `WebKitWebDriver` on its port — and
//! the server stops. Pitfalls behind these choices: docs/e2e.md.

use std::future::Future;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

use tincan_server::store::Store;
use tincan_tests::{uid, TestServer};

mod app;
pub mod desktop_bus;
pub use app::App;

/// How long any wait for the window may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);
/// How often waits poll the DOM.
pub(crate) const POLL: Duration = Duration::from_millis(100);
/// How long `tauri-driver` may take to listen, and the app to open a session.
const STARTUP: Duration = Duration::from_secs(30);
/// The most a whole scenario may take (the app, the driver and the server are torn down
/// after it, and the test fails).
const SCENARIO: Duration = Duration::from_secs(180);
/// How long `tauri-driver` gets to stop `WebKitWebDriver` and exit after SIGTERM.
const DRIVER_EXIT: Duration = Duration::from_secs(10);

/// Set to `1` (CI does) so missing prerequisites fail the suite instead of skipping it.
const STRICT_ENV: &str = "TINCAN_E2E";
/// Overrides the app binary (default: `tincan-app` next to the test binary's `deps/`).
const APP_ENV: &str = "TINCAN_APP";

/// One app at a time: they would share the X display and fight over focus.
static SERIAL: Mutex<()> = Mutex::new(());
/// Why the app could not be started, once that happened: the other tests of the run
/// fail at once instead of each waiting [`STARTUP`] for the same reason.
static START_FAILED: OnceLock<String> = OnceLock::new();

/// What a scenario gets: the server the app talks to and the app's window.
pub struct Session {
    /// The server the app was started with (`--server`).
    pub server: Arc<TestServer>,
    /// The app's window, through WebDriver.
    pub app: App,
    /// The app's profile directory (`--profile`), empty at start.
    pub profile: PathBuf,
}

/// The password [`with_password`] gives users.
pub const PASSWORD: &str = "correct horse battery";

/// A `setup` for [`run_with`]: gives `user` the password [`PASSWORD`] (test servers'
/// users have none) and launches the app with the default arguments.
pub fn with_password(user: &'static str) -> impl FnOnce(&TestServer, &Path) -> Launch {
    move |server, profile| {
        let hash = tincan_server::auth::hash_password(PASSWORD);
        server
            .store
            .set_password(&uid(user), &hash)
            .expect("set the password");
        default_launch(server, profile)
    }
}

/// Awaits a far end's event (or anything else), failing the test after [`WAIT`].
pub async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("nothing after {WAIT:?}"))
}

impl Session {
    /// Signs `user` (who has [`PASSWORD`]) in through the sign-in screen, with the
    /// prefilled server address, and waits for the contacts screen.
    pub async fn sign_in(&self, user: &str) {
        self.app.wait_state("signin").await;
        self.app.type_into("login-user", user).await;
        self.app.type_into("login-password", PASSWORD).await;
        self.app.click("login-submit").await;
        self.app.wait_state("contacts").await;
    }
}

/// How the app is started.
pub struct Launch {
    /// Arguments after the binary. Default: `--server <url> --profile <dir>`.
    pub args: Vec<String>,
    /// Environment variables for the app (through tauri-driver), besides the test's own.
    pub env: Vec<(String, String)>,
}

/// Runs `scenario` against a freshly started server and app, with the app's default
/// arguments. Skips (passes) when the machine cannot run the app, unless `TINCAN_E2E=1`.
pub fn run<S, F>(name: &str, scenario: S)
where
    S: FnOnce(Session) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    run_with(name, default_launch, scenario)
}

/// The default launch: `--server <url> --profile <dir> --media-bind 127.0.0.1:0` (media
/// stays on loopback: these machines' other interfaces must not be used).
pub fn default_launch(server: &TestServer, profile: &Path) -> Launch {
    Launch {
        args: vec![
            "--server".into(),
            server.url.clone(),
            "--profile".into(),
            profile.display().to_string(),
            "--media-bind".into(),
            "127.0.0.1:0".into(),
        ],
        env: Vec::new(),
    }
}

/// Like [`run`], but `setup` prepares the server (accounts, passwords…) and chooses the
/// app's arguments before the app starts.
pub fn run_with<L, S, F>(name: &str, setup: L, scenario: S)
where
    L: FnOnce(&TestServer, &Path) -> Launch + Send + 'static,
    S: FnOnce(Session) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let Some(env) = prerequisites() else { return };
    // A panicking test poisons the lock; the next one still owns the display alone.
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(session(name.to_owned(), env, setup, scenario));
}

/// What the machine offers for e2e runs.
#[derive(Clone)]
struct Env {
    display: String,
    app: PathBuf,
}

/// Checks everything an e2e run needs. Returns `None` (after saying why) to skip.
/// Checked once per run, so every test sees the same answer even if `ui/` is edited
/// while the suite runs.
fn prerequisites() -> Option<Env> {
    static FOUND: OnceLock<Result<Env, String>> = OnceLock::new();
    let strict = std::env::var(STRICT_ENV).is_ok_and(|v| v == "1");
    match FOUND.get_or_init(find_env).clone() {
        Ok(env) => Some(env),
        Err(reason) if strict => panic!("e2e cannot run ({STRICT_ENV}=1): {reason}"),
        Err(reason) => {
            // Straight to stderr: libtest would swallow println! in a passing test.
            let _ = writeln!(std::io::stderr(), "skipping e2e: {reason}");
            None
        }
    }
}

fn find_env() -> Result<Env, String> {
    let display = std::env::var("DISPLAY")
        .ok()
        .filter(|d| !d.is_empty())
        .ok_or("DISPLAY is not set (run under xvfb-run)")?;
    if let Some(socket) = local_x_socket(&display) {
        if !socket.exists() {
            return Err(format!(
                "no X server on DISPLAY={display} ({} is missing)",
                socket.display()
            ));
        }
    }
    for tool in ["tauri-driver", "WebKitWebDriver", "import"] {
        if which(tool).is_none() {
            return Err(format!("`{tool}` is not on PATH (see docs/e2e.md)"));
        }
    }
    let app = app_binary()?;
    Ok(Env { display, app })
}

/// The app binary: `$TINCAN_APP`, or `tincan-app` in the test binary's profile directory
/// (`target/debug/`, wherever the target directory is). The latter must be at least as
/// new as every file in `ui/`, `src-tauri/src/` and `tauri.conf.json`, or the run would
/// test yesterday's app.
fn app_binary() -> Result<PathBuf, String> {
    let build = "build it with `cargo build -p tincan --features tincan/custom-protocol`";
    let path = match std::env::var_os(APP_ENV) {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
            // target/debug/deps/e2e-<hash> → target/debug/tincan-app
            exe.parent()
                .and_then(Path::parent)
                .ok_or("test binary has no profile directory")?
                .join("tincan-app")
        }
    };
    let path = path
        .canonicalize()
        .map_err(|_| format!("app binary {} is missing; {build}", path.display()))?;
    if std::env::var_os(APP_ENV).is_some() {
        return Ok(path); // chosen by hand: maybe built from another tree
    }
    let built = mtime(&path).ok_or_else(|| format!("cannot stat {}", path.display()))?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace");
    // What cargo rebuilds the binary for when it changes: the page, the backend, the config.
    let sources = ["ui", "src-tauri/src", "tauri.conf.json"].map(|p| root.join(p));
    if let Some((newest, file)) = sources.iter().filter_map(|p| newest_file(p)).max() {
        if newest > built {
            return Err(format!(
                "app binary {} is older than {}; {build}",
                path.display(),
                file.display()
            ));
        }
    }
    Ok(path)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The newest file at or under `path` (skipping `node_modules`), with its modification
/// time.
fn newest_file(path: &Path) -> Option<(SystemTime, PathBuf)> {
    if path.is_file() {
        return mtime(path).map(|t| (t, path.to_path_buf()));
    }
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if e.file_name() != "node_modules" {
                    stack.push(p);
                }
            } else if let Some(t) = mtime(&p) {
                if newest.as_ref().is_none_or(|(n, _)| t > *n) {
                    newest = Some((t, p));
                }
            }
        }
    }
    newest
}

/// The socket of a local display (`:N` or `:N.S`); `None` for remote ones (`host:N`).
fn local_x_socket(display: &str) -> Option<PathBuf> {
    let number = display.strip_prefix(':')?.split('.').next()?;
    number.parse::<u32>().ok()?;
    Some(PathBuf::from(format!("/tmp/.X11-unix/X{number}")))
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Where screenshots and driver logs go (git-ignored).
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    std::fs::create_dir_all(&dir).expect("create tests/artifacts");
    dir
}

async fn session<L, S, F>(name: String, env: Env, setup: L, scenario: S)
where
    L: FnOnce(&TestServer, &Path) -> Launch,
    S: FnOnce(Session) -> F + Send + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let server = Arc::new(TestServer::start().await);
    let profile = TempDir::new(&name);
    let launch = setup(&server, &profile.0);

    if let Some(first) = START_FAILED.get() {
        panic!("the app could not be started earlier in this run, so not again: {first}");
    }
    let driver = Driver::start(&name, &env, &launch.env);
    let client = match driver.connect(&env.app, &launch.args).await {
        Ok(c) => c,
        Err(why) => {
            let _ = START_FAILED.set(why.clone());
            panic!("{why}");
        }
    };
    let app = App {
        c: client.clone(),
        display: env.display.clone(),
    };
    let body = tokio::spawn(scenario(Session {
        server: server.clone(),
        app,
        profile: profile.0.clone(),
    }));
    let abort = body.abort_handle();
    let outcome = match tokio::time::timeout(SCENARIO, body).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.is_panic() => Err(Failure::Panic(e.into_panic())),
        Ok(Err(e)) => Err(Failure::Message(format!("scenario task: {e}"))),
        Err(_) => {
            abort.abort();
            Err(Failure::Message(format!(
                "scenario took more than {SCENARIO:?}"
            )))
        }
    };
    if outcome.is_err() {
        // Evidence for the failure, before the window goes away.
        let failed = App {
            c: client.clone(),
            display: env.display.clone(),
        };
        failed.try_screenshot(&format!("{name}-failed"));
        let seen = client.execute(SEEN_JS, vec![]).await.unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "e2e {name} failed; the window showed: {seen}; screenshot: tests/artifacts/{name}-failed.png"
        );
    }
    // Closing the session closes the app; then the driver gets its SIGTERM (Drop).
    if let Err(e) = client.close().await {
        let _ = writeln!(std::io::stderr(), "e2e {name}: closing the session: {e}");
    }
    drop(driver);
    if let Ok(server) = Arc::try_unwrap(server) {
        server.stop().await;
    }
    drop(profile);
    match outcome {
        Ok(()) => {}
        Err(Failure::Panic(p)) => std::panic::resume_unwind(p),
        Err(Failure::Message(m)) => panic!("e2e {name}: {m}"),
    }
}

enum Failure {
    Panic(Box<dyn std::any::Any + Send>),
    Message(String),
}

/// A running `tauri-driver`; dropping it sends SIGTERM and waits for it to exit.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Driver {
    fn start(name: &str, env: &Env, app_env: &[(String, String)]) -> Driver {
        // tauri-driver wants explicit ports, and both must be free: take two at once.
        let (port, native_port) = {
            let a = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            let b = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            (
                a.local_addr().unwrap().port(),
                b.local_addr().unwrap().port(),
            )
        };
        let log = artifacts().join(format!("{name}.driver.log"));
        let out = std::fs::File::create(&log).expect("create the driver log");
        let err = out.try_clone().expect("clone the driver log");
        let child = Command::new("tauri-driver")
            .args(["--port", &port.to_string()])
            .args(["--native-port", &native_port.to_string()])
            .env("DISPLAY", &env.display)
            .envs(app_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn tauri-driver");
        let mut driver = Driver { child, port, log };
        driver.wait_listening();
        driver
    }

    /// Polls until the driver accepts connections (bounded; fails if it exits).
    fn wait_listening(&mut self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + STARTUP;
        loop {
            if TcpStream::connect_timeout(&addr, POLL).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "tauri-driver exited ({status}) before listening; log: {}",
                    self.log.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tauri-driver did not listen on {addr} within {STARTUP:?}; log: {}",
                self.log.display()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Opens a WebDriver session, which launches the app with `args`.
    async fn connect(&self, app: &Path, args: &[String]) -> Result<Client, String> {
        let caps = json!({
            "browserName": "wry",
            "tauri:options": { "application": app, "args": args },
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object")
        };
        let url = format!("http://127.0.0.1:{}", self.port);
        let mut builder = ClientBuilder::native();
        let connect = builder.capabilities(caps).connect(&url);
        match tokio::time::timeout(STARTUP, connect).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!(
                "WebDriver session (app {}) did not start: {e}; log: {}",
                app.display(),
                self.log.display()
            )),
            Err(_) => Err(format!(
                "WebDriver session did not start within {STARTUP:?}; log: {}",
                self.log.display()
            )),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SIGTERM lets tauri-driver stop WebKitWebDriver; SIGKILL would orphan it.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + DRIVER_EXIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(POLL);
        }
        let _ = writeln!(
            std::io::stderr(),
            "tauri-driver ignored SIGTERM for {DRIVER_EXIT:?}; killing it (WebKitWebDriver may be left behind)"
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("tincan-e2e-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the profile directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the window showed when a test failed: the screen and every visible message.
const SEEN_JS: &str = r#"
const root = document.querySelector('[data-testid="app"]');
const seen = { screen: root && root.getAttribute('data-state') };
for (const el of document.querySelectorAll('[role="alert"], [data-testid$="-status"], [data-testid="call-ended-reason"]')) {
  if (el.offsetParent !== null && el.textContent.trim()) seen[el.dataset.testid] = el.textContent.trim();
}
return seen;
"#;
