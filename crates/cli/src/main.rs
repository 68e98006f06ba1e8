//! `tincan`: Tincan's command-line client, on top of tincan-sdk.
//!
//! Sign up and in (`register`, `login`), place a call (`call`), answer calls
//! (`listen --auto accept`), read the call history (`history`), or drive a client line
//! by line (`repl`) — which is how end-to-end tests play the far end of a call.
//!
//! Stdout carries only JSON, one object per line (see `output`); logs go to stderr
//! (`RUST_LOG=tincan_sdk=debug` for the SDK's). Every command that connects prints a
//! `{"reply":"login",…}` line first, then its events and replies.

mod call;
mod listen;
mod media;
mod output;
mod repl;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tincan_sdk::protocol::{DeviceId, HistoryParams, MediaType, PlatformId, UserId};
use tincan_sdk::{
    new_operation_id, ApiResult, Client, CloseReason, ConnectionState, DeviceInfo, SdkError,
    SdkEvent,
};
use tokio::sync::mpsc;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::listen::Auto;
use crate::media::MediaOpts;
use crate::output::{emit, reply_line, sdk_event_line};

/// Tincan's command-line client: OpenIM's signaling API from a shell.
#[derive(Debug, Parser)]
#[command(name = "tincan", version)]
struct Cli {
    /// The server (http://host:port or ws://host:port; https:// or wss:// for TLS).
    #[arg(
        long,
        env = "TINCAN_SERVER",
        default_value = "http://127.0.0.1:7070",
        global = true
    )]
    server: String,
    /// PEM file of extra CA certificates to trust for https/wss servers, besides the
    /// system's (for a server with a self-signed certificate).
    #[arg(long, env = "TINCAN_CA_FILE", global = true, value_name = "PEM")]
    ca_file: Option<std::path::PathBuf>,
    /// The user to sign in as.
    #[arg(long, env = "TINCAN_USER", global = true)]
    user: Option<String>,
    /// The user's password.
    #[arg(long, env = "TINCAN_PASSWORD", hide_env_values = true, global = true)]
    password: Option<String>,
    /// A session token, instead of --user and --password.
    #[arg(long, env = "TINCAN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// This device's id [default: a new random one per run].
    #[arg(long, global = true)]
    device: Option<String>,
    /// OpenIM platform id: 1 iOS, 2 Android, 3 Windows, 4 macOS, 5 Web, 6 mini web,
    /// 7 Linux, 8 Android pad, 9 iPad.
    #[arg(long, default_value_t = 7, global = true,
          value_parser = clap::value_parser!(u8).range(1..=9))]
    platform: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an account (--user, --password); prints the token JSON.
    Register {
        /// Display name.
        #[arg(long)]
        nickname: Option<String>,
    },
    /// Sign in (--user, --password); prints the token JSON.
    Login,
    /// Print every event as a JSON line until Ctrl-C.
    Listen {
        /// Answer incoming invitations automatically.
        #[arg(long, value_enum, default_value_t = Auto::None)]
        auto: Auto,
        /// With --auto accept: hang up this many milliseconds after accepting.
        #[arg(long, value_name = "MS")]
        hangup_after_ms: Option<u64>,
        #[command(flatten)]
        media: MediaOpts,
    },
    /// Call a user and print events until the call ends. Ctrl-C cancels or hangs up.
    Call {
        /// Whom to call.
        user_id: String,
        /// Voice only (default: video).
        #[arg(long)]
        audio: bool,
        /// Seconds to ring (0: the server's default).
        #[arg(long, default_value_t = 0)]
        timeout: u32,
        /// Hang up this many milliseconds after the callee answers.
        #[arg(long, value_name = "MS")]
        hangup_after_ms: Option<u64>,
        #[command(flatten)]
        media: MediaOpts,
    },
    /// Read commands from stdin; print replies and events as JSON lines.
    ///
    /// Commands: invite <user[,user]> [audio|video] [timeout] · invite-group <groupID>
    /// <user,user> [audio|video] [timeout] · accept|reject|cancel|hangup [roomID] ·
    /// custom <roomID> <text> · room-by-group <groupID> · token-by-room <roomID> ·
    /// start-app · history · contacts · ping · quit. A missing roomID means the last
    /// invitation or call seen.
    Repl,
    /// Print the microphones, speakers and cameras this machine has, and the screens and
    /// windows it can share, as JSON (ids for --microphone, --speakers, --camera and
    /// --screen).
    Devices,
    /// Print this user's call history as JSON.
    History {
        /// At most this many calls, newest first.
        #[arg(long)]
        limit: Option<u32>,
    },
}

fn main() -> ExitCode {
    // Calls start and stop threads; see crates/media/src/allocator.rs.
    tincan_media::use_one_malloc_arena();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .finish()
        // The crates that print whole frames (tokens and credentials with them) at
        // `trace` stay quiet whatever RUST_LOG says: docs/security.md.
        .with(tracing_subscriber::filter::filter_fn(|meta| {
            *meta.level() < tracing::Level::TRACE
                || !tincan_protocol::limits::is_frame_logging(meta.target())
        }))
        .init();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    runtime.block_on(run(cli))
}

/// The server's account endpoints, trusting `--ca-file` too.
fn accounts(cli: &Cli) -> Result<tincan_sdk::Accounts, SdkError> {
    tincan_sdk::Accounts::with_ca_file(&cli.server, cli.ca_file.as_deref())
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Register { ref nickname } => {
            let Some((user, password)) = credentials(&cli) else {
                return usage("register needs --user and --password");
            };
            let r = match accounts(&cli) {
                Ok(a) => a.register(user, password, nickname.as_deref()).await,
                Err(e) => Err(e),
            };
            print_token(r, "register")
        }
        Command::Login => {
            let Some((user, password)) = credentials(&cli) else {
                return usage("login needs --user and --password");
            };
            let r = match accounts(&cli) {
                Ok(a) => a.sign_in(user, password).await,
                Err(e) => Err(e),
            };
            print_token(r, "login")
        }
        Command::Listen {
            auto,
            hangup_after_ms,
            ref media,
        } => match session(&cli, true).await {
            Ok((client, events)) => {
                listen::run(
                    client,
                    events,
                    auto,
                    hangup_after_ms.map(Duration::from_millis),
                    media.clone(),
                )
                .await
            }
            Err(code) => code,
        },
        Command::Call {
            ref user_id,
            audio,
            timeout,
            hangup_after_ms,
            media: ref media_opts,
        } => {
            let callee = match UserId::new(user_id.as_str()) {
                Ok(u) => u,
                Err(e) => return usage(&e.to_string()),
            };
            let media = if audio {
                MediaType::Audio
            } else {
                MediaType::Video
            };
            match session(&cli, true).await {
                Ok((client, events)) => {
                    let after = hangup_after_ms.map(Duration::from_millis);
                    call::run(
                        client,
                        events,
                        callee,
                        media,
                        timeout,
                        after,
                        media_opts.clone(),
                    )
                    .await
                }
                Err(code) => code,
            }
        }
        Command::Devices => {
            let devices = tincan_media::devices();
            emit(&serde_json::to_string(&devices).expect("devices serialize"));
            ExitCode::SUCCESS
        }
        Command::Repl => match session(&cli, true).await {
            Ok((client, events)) => repl::run(client, events).await,
            Err(code) => code,
        },
        Command::History { limit } => match session(&cli, false).await {
            Ok((client, events)) => {
                let params = HistoryParams {
                    limit,
                    before_time: None,
                };
                let r = client.get_call_history(&new_operation_id(), params).await;
                let code = match r {
                    Ok(history) => {
                        emit(&serde_json::to_string(&history).expect("history serializes"));
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail("history", &e),
                };
                client.close().await;
                drop(events);
                code
            }
            Err(code) => code,
        },
    }
}

fn credentials(cli: &Cli) -> Option<(&str, &str)> {
    Some((cli.user.as_deref()?, cli.password.as_deref()?))
}

fn print_token(r: Result<tincan_sdk::TokenInfo, SdkError>, what: &str) -> ExitCode {
    match r {
        Ok(token) => {
            emit(&serde_json::to_string(&token).expect("token serializes"));
            ExitCode::SUCCESS
        }
        Err(e) => fail(what, &e),
    }
}

fn fail(what: &str, e: &SdkError) -> ExitCode {
    eprintln!("tincan: {what} failed: {e} (errCode {})", e.err_code());
    ExitCode::FAILURE
}

fn usage(message: &str) -> ExitCode {
    eprintln!("tincan: {message}");
    ExitCode::from(2)
}

/// Signs in and connects. With `announce`, prints the `login` reply line (success or
/// failure) as the first line of output.
async fn session(
    cli: &Cli,
    announce: bool,
) -> Result<(Client, mpsc::Receiver<SdkEvent>), ExitCode> {
    let report = |e: SdkError| {
        if announce {
            emit(&reply_line("login", &ApiResult::from_error(&e)));
        }
        fail("login", &e)
    };
    let token = match (&cli.token, credentials(cli)) {
        (Some(token), _) => token.clone(),
        (None, Some((user, password))) => {
            let r = match accounts(cli) {
                Ok(a) => a.sign_in(user, password).await,
                Err(e) => Err(e),
            };
            match r {
                Ok(t) => t.token,
                Err(e) => return Err(report(e)),
            }
        }
        (None, None) => return Err(usage("give --token, or --user and --password")),
    };
    let device_id = cli
        .device
        .clone()
        .unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4().simple()));
    let device_id = match DeviceId::new(device_id) {
        Ok(d) => d,
        Err(e) => return Err(usage(&e.to_string())),
    };
    let platform = PlatformId::new(cli.platform).expect("clap checked the range");
    let mut options = tincan_sdk::ConnectOptions::default();
    options.ca_file = cli.ca_file.clone();
    let device = DeviceInfo::new(device_id, platform);
    match tincan_sdk::connect_with(&cli.server, &token, device, options).await {
        Ok((client, events)) => {
            if announce {
                emit(&reply_line("login", &ApiResult::from(Ok(client.session()))));
            }
            Ok((client, events))
        }
        Err(e) => Err(report(e)),
    }
}

/// Closes the client, printing the events that arrive meanwhile (the last is
/// `Closed`), and returns the exit code that close reason calls for.
pub(crate) async fn close_and_drain(
    client: &Client,
    mut events: mpsc::Receiver<SdkEvent>,
) -> ExitCode {
    // Drain while closing: the driver may wait for room on the channel to report.
    let drain = async {
        let mut code = ExitCode::SUCCESS;
        while let Some(event) = events.recv().await {
            emit(&sdk_event_line(&event));
            if let SdkEvent::Connection(ConnectionState::Closed { reason }) = &event {
                code = exit_code_for(reason);
            }
        }
        code
    };
    let ((), code) = tokio::join!(client.close(), drain);
    code
}

/// 0 when the client closed because we asked; 1 when it was kicked, refused or lost.
pub(crate) fn exit_code_for(reason: &CloseReason) -> ExitCode {
    match reason {
        CloseReason::ClientClosed => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_may_follow_the_subcommand() {
        let cli = Cli::try_parse_from([
            "tincan",
            "register",
            "--user",
            "alice",
            "--password",
            "pw",
            "--nickname",
            "Alice",
        ])
        .unwrap();
        assert_eq!(cli.user.as_deref(), Some("alice"));
        assert!(matches!(cli.command, Command::Register { nickname: Some(ref n) } if n == "Alice"));
        assert_eq!(cli.platform, 7);
    }

    #[test]
    fn listen_and_call_options_parse() {
        let cli = Cli::try_parse_from([
            "tincan",
            "--token",
            "t",
            "listen",
            "--auto",
            "accept",
            "--hangup-after-ms",
            "250",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Listen {
                auto: Auto::Accept,
                hangup_after_ms: Some(250),
                ..
            }
        ));
        let cli =
            Cli::try_parse_from(["tincan", "call", "bob", "--audio", "--timeout", "5"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Call { ref user_id, audio: true, timeout: 5, .. } if user_id == "bob"
        ));
    }

    #[test]
    fn platform_ids_outside_openims_range_are_refused() {
        assert!(Cli::try_parse_from(["tincan", "--platform", "10", "login"]).is_err());
        assert!(Cli::try_parse_from(["tincan", "--platform", "0", "login"]).is_err());
    }
}
