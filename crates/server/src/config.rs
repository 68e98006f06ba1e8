//! Configuration from flags, environment and a TOML file (in that order of precedence),
//! with defaults for everything, so `tincan-server` runs with no setup at all.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::origin::{AllowedOrigin, HostPattern};
use crate::{ConnLimits, HubConfig, IceConfig, ServerConfig, TlsFiles, TransportConfig};

/// Server settings. Every flag also reads `TINCAN_<NAME>` from the environment and
/// `<name>` (snake_case) from the `--config` file.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "TINCAN_LISTEN")]
    pub listen: Option<String>,
    /// SQLite database file (created if missing). `--database` names either engine.
    #[arg(long, env = "TINCAN_DB")]
    pub db: Option<PathBuf>,
    /// The store: a `postgres://user:password@host:port/db` URL, or a SQLite file as a
    /// path or `sqlite:` URL (default: `--db`, else ./tincan.db). A password in it is
    /// visible in the process list as a flag: prefer the environment or the file.
    #[arg(long, env = "TINCAN_DATABASE", hide_env_values = true)]
    pub database: Option<String>,
    /// Cluster mode: a `redis://[user:password@]host:port` URL shared by every node
    /// (docs/deploy.md). Needs a PostgreSQL `--database` shared by every node too.
    #[arg(long, env = "TINCAN_REDIS", hide_env_values = true)]
    pub redis: Option<String>,
    /// This node's name in a cluster's logs (default: the host name). Nodes are told
    /// apart by the number Redis gives each at start; the name is for people.
    #[arg(long, env = "TINCAN_NODE_ID")]
    pub node_id: Option<String>,
    /// Base URL clients reach this server at (e.g. ws://calls.example.org:7070).
    #[arg(long, env = "TINCAN_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Token-signing secret (default: generated once and kept in `<db>.key`). Given as
    /// a flag it is visible to every local user in the process list: prefer
    /// `--secret-file` or the environment.
    #[arg(long, env = "TINCAN_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// File holding the token-signing secret (used when `--secret` is not given).
    #[arg(long, env = "TINCAN_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// STUN URL to hand to clients (repeatable).
    #[arg(long = "stun", env = "TINCAN_STUN", value_delimiter = ',')]
    pub stun: Option<Vec<String>>,
    /// TURN URL to hand to clients (repeatable).
    #[arg(long = "turn", env = "TINCAN_TURN", value_delimiter = ',')]
    pub turn: Option<Vec<String>>,
    /// TURN REST secret (coturn's static-auth-secret). As a flag it is visible in the
    /// process list: prefer `--turn-secret-file` or the environment.
    #[arg(long, env = "TINCAN_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// File holding the TURN REST secret (used when `--turn-secret` is not given).
    #[arg(long, env = "TINCAN_TURN_SECRET_FILE")]
    pub turn_secret_file: Option<PathBuf>,
    /// Lifetime of TURN credentials, seconds.
    #[arg(long, env = "TINCAN_TURN_TTL")]
    pub turn_ttl: Option<u64>,
    /// Ring time when an invitation says 0, seconds.
    #[arg(long, env = "TINCAN_DEFAULT_TIMEOUT")]
    pub default_timeout: Option<u64>,
    /// Longest ring time, seconds.
    #[arg(long, env = "TINCAN_MAX_TIMEOUT")]
    pub max_timeout: Option<u64>,
    /// Seconds an unanswered call waits for its caller's device to reconnect.
    #[arg(long, env = "TINCAN_INVITER_GRACE")]
    pub inviter_grace: Option<u64>,
    /// Seconds a call waits for a participant's device to reconnect.
    #[arg(long, env = "TINCAN_PARTICIPANT_GRACE")]
    pub participant_grace: Option<u64>,
    /// Most WebSocket connections at once.
    #[arg(long, env = "TINCAN_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most connected devices per user.
    #[arg(long, env = "TINCAN_MAX_DEVICES")]
    pub max_devices: Option<usize>,
    /// Most people in one call.
    #[arg(long, env = "TINCAN_MAX_ROOM_SIZE")]
    pub max_room_size: Option<usize>,
    /// Largest request frame, bytes.
    #[arg(long, env = "TINCAN_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Sustained requests per second per connection.
    #[arg(long, env = "TINCAN_RATE")]
    pub rate: Option<f64>,
    /// Request burst per connection.
    #[arg(long, env = "TINCAN_BURST")]
    pub burst: Option<f64>,
    /// Close `POST /api/register` (accounts then come from `tincan-server user add`).
    #[arg(long, env = "TINCAN_NO_REGISTRATION")]
    pub no_registration: Option<bool>,
    /// Serve Prometheus metrics at `GET /metrics` on the server's port (off by default:
    /// counts of connections and calls are nobody else's business; see docs/deploy.md).
    #[arg(long, env = "TINCAN_METRICS")]
    pub metrics: Option<bool>,
    /// Seconds of silence from a client before the server pings it (WebSocket ping).
    #[arg(long, env = "TINCAN_PING_AFTER")]
    pub ping_after: Option<u64>,
    /// Seconds a client has to answer a ping before it counts as gone.
    #[arg(long, env = "TINCAN_PONG_TIMEOUT")]
    pub pong_timeout: Option<u64>,
    /// Failed password sign-ins per account before lockouts start.
    #[arg(long, env = "TINCAN_LOGIN_FREE_FAILURES")]
    pub login_free_failures: Option<u32>,
    /// Failed password sign-ins per address (IPv6: per /64) before lockouts start.
    #[arg(long, env = "TINCAN_LOGIN_ADDRESS_FREE_FAILURES")]
    pub login_address_free_failures: Option<u32>,
    /// Longest sign-in lockout, seconds (lockouts start at 1 s and double).
    #[arg(long, env = "TINCAN_LOGIN_MAX_LOCKOUT")]
    pub login_max_lockout: Option<u64>,
    /// Registrations one address may make at once.
    #[arg(long, env = "TINCAN_REGISTER_BURST")]
    pub register_burst: Option<u32>,
    /// Registrations one address may make per hour, sustained.
    #[arg(long, env = "TINCAN_REGISTER_PER_HOUR")]
    pub register_per_hour: Option<u32>,
    /// Registrations the whole server takes at once.
    #[arg(long, env = "TINCAN_REGISTER_GLOBAL_BURST")]
    pub register_global_burst: Option<u32>,
    /// Registrations the whole server takes per hour, sustained.
    #[arg(long, env = "TINCAN_REGISTER_GLOBAL_PER_HOUR")]
    pub register_global_per_hour: Option<u32>,
    /// Password-hashing threads (0: one per core).
    #[arg(long, env = "TINCAN_HASH_THREADS")]
    pub hash_threads: Option<usize>,
    /// Password hashes that may wait for a thread; more are refused with ServerBusy.
    #[arg(long, env = "TINCAN_HASH_QUEUE")]
    pub hash_queue: Option<usize>,
    /// PEM certificate chain: serve https and wss (needs --tls-key). Reloaded when the
    /// file changes or on SIGHUP.
    #[arg(long, env = "TINCAN_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "TINCAN_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Seconds a client has for its TLS handshake, and for each request's headers.
    #[arg(long, env = "TINCAN_HEADER_TIMEOUT")]
    pub header_timeout: Option<u64>,
    /// Most connections that have not signed in, per remote address (IPv6: per /64).
    #[arg(long, env = "TINCAN_MAX_UNAUTHENTICATED_PER_ADDRESS")]
    pub max_unauthenticated_per_address: Option<usize>,
    /// Most connections that have not signed in, in all (default: a quarter of
    /// --max-connections).
    #[arg(long, env = "TINCAN_MAX_UNAUTHENTICATED")]
    pub max_unauthenticated: Option<usize>,
    /// Browser origins allowed to use the server, comma-separated
    /// (`https://app.example.org`). Default: none; requests from web pages (any
    /// `Origin` header) are refused, native clients send none.
    #[arg(long, env = "TINCAN_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<AllowedOrigin>>,
    /// `Host` names the server answers to, comma-separated (`name` or `name:port`;
    /// `*` for any). Default: loopback names when listening on loopback, any otherwise.
    #[arg(long, env = "TINCAN_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Option<Vec<HostPattern>>,
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for these settings.
    #[error("{path}: {source}")]
    Parse {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: toml::de::Error,
    },
}

impl Settings {
    /// Reads a TOML settings file.
    pub fn from_file(path: &std::path::Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Fills every setting `self` leaves open from `file`.
    pub fn or(self, file: Settings) -> Settings {
        macro_rules! pick {
            ($($f:ident),*) => { Settings { $($f: self.$f.or(file.$f)),* } };
        }
        pick!(
            listen,
            db,
            database,
            redis,
            node_id,
            public_url,
            secret,
            secret_file,
            stun,
            turn,
            turn_secret,
            turn_secret_file,
            turn_ttl,
            default_timeout,
            max_timeout,
            inviter_grace,
            participant_grace,
            max_connections,
            max_devices,
            max_room_size,
            max_frame_bytes,
            rate,
            burst,
            no_registration,
            metrics,
            ping_after,
            pong_timeout,
            login_free_failures,
            login_address_free_failures,
            login_max_lockout,
            register_burst,
            register_per_hour,
            register_global_burst,
            register_global_per_hour,
            hash_threads,
            hash_queue,
            tls_cert,
            tls_key,
            header_timeout,
            max_unauthenticated_per_address,
            max_unauthenticated,
            allowed_origins,
            allowed_hosts
        )
    }

    /// Reads the secrets given as files (`secret_file`, `turn_secret_file`) into
    /// `secret` and `turn_secret`, where those are not given directly.
    pub fn load_secret_files(&mut self) -> Result<(), ConfigError> {
        let read = |path: &PathBuf| {
            crate::store::key::read_secret_file(path).map_err(|e| match e {
                crate::store::StoreError::File { path, source } => {
                    ConfigError::Read { path, source }
                }
                other => ConfigError::Read {
                    path: path.clone(),
                    source: std::io::Error::other(other.to_string()),
                },
            })
        };
        if self.secret.is_none() {
            if let Some(p) = &self.secret_file {
                self.secret = Some(read(p)?);
            }
        }
        if self.turn_secret.is_none() {
            if let Some(p) = &self.turn_secret_file {
                self.turn_secret = Some(read(p)?);
            }
        }
        Ok(())
    }

    /// The listen address (default 127.0.0.1:7070).
    pub fn listen_addr(&self) -> String {
        self.listen
            .clone()
            .unwrap_or_else(|| "127.0.0.1:7070".into())
    }

    /// The store to open: `--database`, else the SQLite file `--db`, else ./tincan.db.
    pub fn database(&self) -> crate::store::Database {
        match &self.database {
            Some(d) => crate::store::Database::parse(d),
            None => crate::store::Database::Sqlite(self.db_path()),
        }
    }

    /// The database path (default ./tincan.db).
    pub fn db_path(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| PathBuf::from("tincan.db"))
    }

    /// The server configuration these settings describe.
    pub fn server_config(&self) -> ServerConfig {
        let d = ServerConfig::default();
        let secs =
            |v: Option<u64>, default: Duration| v.map(Duration::from_secs).unwrap_or(default);
        let hub_d = HubConfig::default();
        let lim_d = ConnLimits::default();
        ServerConfig {
            hub: HubConfig {
                default_timeout: secs(self.default_timeout, hub_d.default_timeout),
                max_timeout: secs(self.max_timeout, hub_d.max_timeout),
                inviter_grace: secs(self.inviter_grace, hub_d.inviter_grace),
                participant_grace: secs(self.participant_grace, hub_d.participant_grace),
                max_devices_per_user: self.max_devices.unwrap_or(hub_d.max_devices_per_user),
                max_room_size: self.max_room_size.unwrap_or(hub_d.max_room_size).max(2),
                ice: IceConfig {
                    stun_urls: self.stun.clone().unwrap_or_default(),
                    turn_urls: self.turn.clone().unwrap_or_default(),
                    turn_secret: self.turn_secret.clone(),
                    turn_ttl_secs: self.turn_ttl.unwrap_or(3600) as i64,
                },
                ..hub_d
            },
            limits: ConnLimits {
                max_frame_bytes: self.max_frame_bytes.unwrap_or(lim_d.max_frame_bytes),
                rate_per_sec: self.rate.unwrap_or(lim_d.rate_per_sec),
                rate_burst: self.burst.unwrap_or(lim_d.rate_burst),
                ping_after: secs(self.ping_after.map(|s| s.max(1)), lim_d.ping_after),
                pong_timeout: secs(self.pong_timeout.map(|s| s.max(1)), lim_d.pong_timeout),
                ..lim_d
            },
            throttle: self.throttle(),
            hash_threads: self.hash_threads.unwrap_or(d.hash_threads),
            hash_queue: self.hash_queue.unwrap_or(d.hash_queue),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            secret: self.secret.clone(),
            allow_registration: !self.no_registration.unwrap_or(false),
            metrics: self.metrics.unwrap_or(false),
            allowed_origins: self.allowed_origins.clone().unwrap_or_default(),
            allowed_hosts: self.allowed_hosts.clone(),
            public_url: self.public_url.clone(),
            transport: self.transport(),
            cluster: self
                .redis
                .as_ref()
                .map(|url| crate::cluster::ClusterConfig {
                    redis_url: url.clone(),
                    node_name: self.node_id.clone().unwrap_or_else(host_name),
                    timing: Default::default(),
                }),
            ..d
        }
    }
}

/// The machine's host name, as the kernel has it; "node" when it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".into())
}

impl Settings {
    fn throttle(&self) -> crate::throttle::ThrottleConfig {
        let d = crate::throttle::ThrottleConfig::default();
        crate::throttle::ThrottleConfig {
            account_free_failures: self.login_free_failures.unwrap_or(d.account_free_failures),
            address_free_failures: self
                .login_address_free_failures
                .unwrap_or(d.address_free_failures),
            max_delay: self
                .login_max_lockout
                .map(|s| Duration::from_secs(s.max(1)))
                .unwrap_or(d.max_delay),
            register_burst: self.register_burst.unwrap_or(d.register_burst),
            register_per_hour: self.register_per_hour.unwrap_or(d.register_per_hour),
            register_global_burst: self
                .register_global_burst
                .unwrap_or(d.register_global_burst),
            register_global_per_hour: self
                .register_global_per_hour
                .unwrap_or(d.register_global_per_hour),
            ..d
        }
    }

    fn transport(&self) -> TransportConfig {
        let d = TransportConfig::default();
        TransportConfig {
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                }),
                _ => None,
            },
            header_timeout: self
                .header_timeout
                .map(|s| Duration::from_secs(s.max(1)))
                .unwrap_or(d.header_timeout),
            max_unauthenticated_per_address: self
                .max_unauthenticated_per_address
                .unwrap_or(d.max_unauthenticated_per_address),
            max_unauthenticated: self.max_unauthenticated.or(d.max_unauthenticated),
            ..d
        }
    }

    /// Cluster mode on a SQLite file is a mistake: each node would keep its own calls
    /// and accounts.
    pub fn check_cluster(&self) -> Result<(), String> {
        match (&self.redis, self.database()) {
            (Some(_), db @ crate::store::Database::Sqlite(_)) => Err(format!(
                "--redis (cluster mode) needs a database every node shares: give --database postgres://…, not the SQLite file {} (docs/deploy.md)",
                db.describe()
            )),
            _ => Ok(()),
        }
    }

    /// A certificate without its key (or the other way round) is a mistake, not plain
    /// HTTP: clap checks it for flags, this for the file and the environment.
    pub fn check_tls(&self) -> Result<(), String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => Err("tls_cert is set but tls_key is not; set both".into()),
            (None, Some(_)) => Err("tls_key is set but tls_cert is not; set both".into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_defaults_fill_the_rest() {
        let file: Settings =
            toml::from_str("listen = \"0.0.0.0:9\"\ndefault_timeout = 45\nrate = 5.0").unwrap();
        let flags = Settings {
            listen: Some("127.0.0.1:1".into()),
            ..Settings::default()
        };
        let s = flags.or(file);
        assert_eq!(s.listen_addr(), "127.0.0.1:1");
        let c = s.server_config();
        assert_eq!(c.hub.default_timeout, Duration::from_secs(45));
        assert_eq!(c.limits.rate_per_sec, 5.0);
        assert_eq!(c.hub.max_timeout, Duration::from_secs(120));
    }

    #[test]
    fn cluster_mode_needs_a_shared_database_and_says_so() {
        let on_sqlite = Settings {
            redis: Some("redis://127.0.0.1:6379".into()),
            ..Settings::default()
        };
        let err = on_sqlite.check_cluster().unwrap_err();
        assert!(
            err.contains("postgres://") && err.contains("--redis"),
            "{err}"
        );
        let on_postgres = Settings {
            database: Some("postgres://tincan@127.0.0.1/tincan".into()),
            ..on_sqlite
        };
        assert_eq!(on_postgres.check_cluster(), Ok(()));
        assert!(on_postgres.server_config().cluster.is_some());
        assert!(Settings::default().server_config().cluster.is_none());
    }

    #[test]
    fn the_database_setting_names_the_store_and_db_stays_the_sqlite_default() {
        use crate::store::Database;
        assert_eq!(
            Settings::default().database(),
            Database::Sqlite("tincan.db".into())
        );
        let old = Settings {
            db: Some("/var/lib/tincan/tincan.db".into()),
            ..Settings::default()
        };
        assert_eq!(
            old.database(),
            Database::Sqlite("/var/lib/tincan/tincan.db".into())
        );
        let file: Settings =
            toml::from_str("database = \"postgres://tincan@127.0.0.1/tincan\"").unwrap();
        assert_eq!(
            old.or(file).database(),
            Database::Postgres("postgres://tincan@127.0.0.1/tincan".into()),
            "--database wins over --db"
        );
        let flags = Settings {
            database: Some("sqlite:other.db".into()),
            ..Settings::default()
        };
        let file: Settings = toml::from_str("database = \"postgres://h/db\"").unwrap();
        assert_eq!(
            flags.or(file).database(),
            Database::Sqlite("other.db".into())
        );
    }

    #[test]
    fn allowed_origins_and_hosts_come_from_flags_or_the_file_and_are_checked() {
        let file: Settings = toml::from_str(
            "allowed_origins = [\"https://app.example.org\"]\nallowed_hosts = [\"calls.example.org\"]",
        )
        .unwrap();
        let c = Settings::default().or(file).server_config();
        assert_eq!(
            c.allowed_origins,
            vec!["https://app.example.org".parse().unwrap()]
        );
        assert_eq!(
            c.allowed_hosts,
            Some(vec!["calls.example.org".parse().unwrap()])
        );
        assert!(toml::from_str::<Settings>("allowed_origins = [\"null\"]").is_err());
        let d = Settings::default().server_config();
        assert!(d.allowed_origins.is_empty() && d.allowed_hosts.is_none());
    }

    #[test]
    fn secrets_are_read_from_their_files_unless_given_directly() {
        let dir = std::env::temp_dir().join(format!("tincan-config-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "from-the-file\n").unwrap();
        let mut s = Settings {
            secret_file: Some(file.clone()),
            turn_secret_file: Some(file.clone()),
            turn_secret: Some("given".into()),
            ..Settings::default()
        };
        s.load_secret_files().unwrap();
        assert_eq!(s.secret.as_deref(), Some("from-the-file"));
        assert_eq!(s.turn_secret.as_deref(), Some("given"));
        let mut missing = Settings {
            secret_file: Some(dir.join("missing")),
            ..Settings::default()
        };
        assert!(matches!(
            missing.load_secret_files(),
            Err(ConfigError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tls_and_admission_settings_reach_the_transport() {
        let file: Settings = toml::from_str(
            "tls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\nheader_timeout = 3\nmax_unauthenticated_per_address = 40",
        )
        .unwrap();
        let t = Settings::default().or(file).server_config().transport;
        let files = t.tls.unwrap();
        assert_eq!(files.cert, PathBuf::from("/c.pem"));
        assert_eq!(files.key, PathBuf::from("/k.pem"));
        assert_eq!(t.header_timeout, Duration::from_secs(3));
        assert_eq!(t.max_unauthenticated_per_address, 40);
        let half: Settings = toml::from_str("tls_cert = \"/c.pem\"").unwrap();
        assert!(half.check_tls().unwrap_err().contains("tls_key"));
        assert!(Settings::default().server_config().transport.tls.is_none());
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        assert!(toml::from_str::<Settings>("lisen = \"x\"").is_err());
    }
}
