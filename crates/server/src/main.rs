//! `tincan-server`: parses configuration, then serves — or runs an operator command
//! against the database.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tincan_protocol::{GroupId, UserId};
use tincan_server::config::Settings;
use tincan_server::store::Store;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[derive(Parser)]
#[command(
    name = "tincan-server",
    version,
    about = "Tincan's call signaling server"
)]
struct Cli {
    /// TOML file with settings (flags and environment override it).
    #[arg(long, env = "TINCAN_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage groups.
    #[command(subcommand)]
    Group(GroupCmd),
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user with a password.
    Add {
        user: String,
        #[command(flatten)]
        password: PasswordArg,
        #[arg(long)]
        nickname: Option<String>,
    },
    /// Set a user's password.
    Passwd {
        user: String,
        #[command(flatten)]
        password: PasswordArg,
    },
    /// Remove a user: their devices are signed out within the server's account check
    /// interval (30 s by default) and they leave their call; their call records stay.
    Delete { user: String },
    /// List users.
    List,
}

/// Where a new password comes from. `--password` puts it in the process list, where
/// every local user can read it while the command runs; `--password-stdin` and
/// `TINCAN_USER_PASSWORD` do not.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct PasswordArg {
    /// The password (visible to other local users in the process list: prefer
    /// `--password-stdin` or TINCAN_USER_PASSWORD).
    #[arg(long, env = "TINCAN_USER_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

impl PasswordArg {
    fn read(self) -> Result<String, Failure> {
        if let Some(p) = self.password {
            return Ok(p);
        }
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let p = line.trim_end_matches(['\r', '\n']);
        if p.is_empty() {
            return Err("no password on standard input".into());
        }
        Ok(p.to_owned())
    }
}

#[derive(Subcommand)]
enum GroupCmd {
    /// Create a group, optionally with members.
    Create {
        group: String,
        #[arg(long)]
        name: Option<String>,
        /// Comma-separated user ids.
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
    },
    /// Add members (comma-separated).
    AddMember {
        group: String,
        #[arg(value_delimiter = ',')]
        users: Vec<String>,
    },
    /// Remove members (comma-separated).
    RemoveMember {
        group: String,
        #[arg(value_delimiter = ',')]
        users: Vec<String>,
    },
    /// List groups and members.
    List,
}

type Failure = Box<dyn std::error::Error>;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, so log files and pipes stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish()
        .with(tincan_server::logging::frames_never_logged())
        .init();
    let cli = Cli::parse();
    match main_inner(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tincan-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main_inner(cli: Cli) -> Result<(), Failure> {
    let file = match &cli.config {
        Some(p) => Settings::from_file(p)?,
        None => Settings::default(),
    };
    let mut settings = cli.settings.or(file);
    settings.load_secret_files()?;
    warn_about_secret_flags();
    let database = settings.database();
    if database.has_password() && flag_given("--database") {
        tracing::warn!(
            flag = "--database",
            "a password given in a flag is visible to other local users in the process list; use TINCAN_DATABASE or the config file instead"
        );
    }
    settings.check_cluster()?;
    if settings.redis.as_deref().is_some_and(|u| u.contains('@')) && flag_given("--redis") {
        tracing::warn!(
            flag = "--redis",
            "a password given in a flag is visible to other local users in the process list; use TINCAN_REDIS or the config file instead"
        );
    }
    let store = database
        .open()
        .map_err(|e| format!("cannot open database {}: {e}", database.describe()))?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings, store),
        Command::User(cmd) => user_cmd(store.as_ref(), cmd),
        Command::Group(cmd) => group_cmd(store.as_ref(), cmd),
    }
}

/// Whether `flag` was given on the command line (as `--flag value` or `--flag=value`).
fn flag_given(flag: &str) -> bool {
    std::env::args()
        .skip(1)
        .any(|a| a.split('=').next() == Some(flag))
}

/// Secrets given as command-line flags can be read by every local user (`ps`,
/// `/proc/<pid>/cmdline`); say so, without repeating the secret.
fn warn_about_secret_flags() {
    for arg in std::env::args().skip(1) {
        let flag = arg.split('=').next().unwrap_or("");
        if matches!(flag, "--secret" | "--turn-secret" | "--password") {
            tracing::warn!(
                flag,
                "a secret given as a flag is visible to other local users in the process list; use its file or environment variable instead"
            );
        }
    }
}

fn serve(settings: Settings, store: Arc<dyn Store>) -> Result<(), Failure> {
    settings.check_tls()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let addr = settings.listen_addr();
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        tincan_server::run(listener, settings.server_config(), store, shutdown_signal()).await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn user_cmd(store: &dyn Store, cmd: UserCmd) -> Result<(), Failure> {
    match cmd {
        UserCmd::Add {
            user,
            password,
            nickname,
        } => {
            let id = UserId::new(user)?;
            if let Some(n) = &nickname {
                tincan_protocol::limits::check_nickname(n)?;
            }
            let password = password.read()?;
            let hash = tincan_server::auth::hash_password(&password);
            store.add_user(&id, nickname.as_deref().unwrap_or(id.as_str()), Some(&hash))?;
            println!("added user {id}");
        }
        UserCmd::Passwd { user, password } => {
            let id = UserId::new(user)?;
            let password = password.read()?;
            store.set_password(&id, &tincan_server::auth::hash_password(&password))?;
            println!("password of {id} changed");
        }
        UserCmd::Delete { user } => {
            let id = UserId::new(user)?;
            store.delete_user(&id)?;
            println!("removed user {id}; a running server signs them out within its account check interval");
        }
        UserCmd::List => {
            for u in store.users()? {
                println!("{}\t{}", u.user_id, u.nickname);
            }
        }
    }
    Ok(())
}

fn group_cmd(store: &dyn Store, cmd: GroupCmd) -> Result<(), Failure> {
    match cmd {
        GroupCmd::Create {
            group,
            name,
            members,
        } => {
            let id = GroupId::new(group)?;
            let name = name.unwrap_or_else(|| id.to_string());
            tincan_protocol::limits::check_name("group name", &name)?;
            store.create_group(&id, &name)?;
            for m in members {
                store.add_member(&id, &UserId::new(m)?)?;
            }
            println!("created group {id}");
        }
        GroupCmd::AddMember { group, users } => {
            let id = GroupId::new(group)?;
            for u in users {
                store.add_member(&id, &UserId::new(u)?)?;
            }
        }
        GroupCmd::RemoveMember { group, users } => {
            let id = GroupId::new(group)?;
            for u in users {
                store.remove_member(&id, &UserId::new(u)?)?;
            }
        }
        GroupCmd::List => {
            for g in store.groups()? {
                let members: Vec<&str> = g.members.iter().map(|m| m.as_str()).collect();
                println!("{}\t{}\t{}", g.group_id, g.name, members.join(","));
            }
        }
    }
    Ok(())
}
