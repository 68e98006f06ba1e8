//! Tincan desktop app: the Tauri shell around the Tincan SDK.
//!
//! This crate is deliberately thin. The page in `ui/` talks to Rust only through the
//! commands in [`commands`] and the events emitted by [`events`] (the only module that
//! emits); call and signaling logic lives in `tincan-sdk`, and the commands only
//! forward to it. [`state`] holds the signed-in session and the embedded server. The IO
//! boundary is the webview: everything crossing it is serialized with serde.
//!
//! Start options (for a second instance on one machine, and for e2e tests):
//! `--server URL` (or `TINCAN_SERVER`) prefills the sign-in form; `--profile DIR` (or
//! `TINCAN_PROFILE`) sets where the device id and the embedded server's database live
//! (default: the OS app data directory); `--media-bind ADDR` (or `TINCAN_MEDIA_BIND`) sets
//! the local address media uses (default: every interface except loopback); `--minimized`
//! starts with the window minimised (what the start-at-login entry passes).
//!
//! The binary `tincan-app` calls [`run`]:
//!
//! ```no_run
//! tincan_app::run();
//! ```

pub mod alerting;
pub mod commands;
pub mod events;
pub mod incoming;
pub mod levels;
pub mod local_server;
pub mod media;
pub mod profile;
pub mod session;
pub mod state;
pub mod tray;

use std::path::PathBuf;

use tauri::Manager;

/// Options read from the command line and the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// `--server URL` / `TINCAN_SERVER`.
    pub server: Option<String>,
    /// `--profile DIR` / `TINCAN_PROFILE`.
    pub profile: Option<PathBuf>,
    /// `--media-bind ADDR` / `TINCAN_MEDIA_BIND`: the local address media uses
    /// (default: every interface except loopback; `127.0.0.1:0` keeps calls on loopback).
    pub media_bind: Option<String>,
    /// `--ca-file PEM` / `TINCAN_CA_FILE`: extra CA certificates to trust for https/wss
    /// servers (a self-signed test deployment), besides the system's.
    pub ca_file: Option<PathBuf>,
    /// `--minimized`: start with the window minimised (the start-at-login entry passes it;
    /// the tray's Open and an incoming call bring the window back).
    pub minimized: bool,
}

impl StartOptions {
    /// Reads `args` (without the program name); flags win over `env`. Unknown
    /// arguments are skipped.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let mut opts = StartOptions::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            match flag.as_str() {
                "--minimized" => opts.minimized = true,
                "--server" | "--profile" | "--media-bind" | "--ca-file" => {
                    let Some(value) = inline.or_else(|| args.next()) else {
                        continue;
                    };
                    match flag.as_str() {
                        "--server" => opts.server = Some(value),
                        "--profile" => opts.profile = Some(PathBuf::from(value)),
                        "--ca-file" => opts.ca_file = Some(PathBuf::from(value)),
                        _ => opts.media_bind = Some(value),
                    }
                }
                _ => {}
            }
        }
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        opts.server = nonempty(opts.server).or_else(|| nonempty(env("TINCAN_SERVER")));
        if opts.profile.is_none() {
            opts.profile = nonempty(env("TINCAN_PROFILE")).map(PathBuf::from);
        }
        opts.media_bind = nonempty(opts.media_bind).or_else(|| nonempty(env("TINCAN_MEDIA_BIND")));
        if opts.ca_file.is_none() {
            opts.ca_file = nonempty(env("TINCAN_CA_FILE")).map(PathBuf::from);
        }
        opts
    }
}

impl StartOptions {
    /// The media state these options ask for. Media binds every interface but loopback
    /// unless told (`127.0.0.1:0` keeps two instances on one machine, and the e2e tests,
    /// on loopback).
    /// ([`StartOptions::parse`] has already taken the flag or the environment.)
    fn media_state(&self) -> media::MediaState {
        media::MediaState::new(self.media_bind.clone())
    }
}

/// Declares the commands once: [`COMMANDS`] (their names, as the page invokes them) and
/// the invoke handler [`run`] registers, so the two cannot drift apart.
macro_rules! app_commands {
    ($($name:ident),* $(,)?) => {
        /// Names of the commands [`run`] registers, as the page invokes them.
        pub const COMMANDS: &[&str] = &[$(stringify!($name)),*];

        fn invoke_handler() -> impl Fn(tauri::ipc::Invoke<tauri::Wry>) -> bool + Send + Sync + 'static {
            tauri::generate_handler![$(commands::$name),*]
        }
    };
}

app_commands!(
    app_info,
    start_embedded_server,
    register,
    sign_in,
    sign_out,
    session,
    signaling_invite,
    signaling_invite_in_group,
    signaling_accept,
    signaling_reject,
    signaling_cancel,
    signaling_hung_up,
    signaling_get_room_by_group_id,
    signaling_get_token_by_room_id,
    get_signaling_invitation_info_start_app,
    signaling_send_custom_signal,
    get_call_history,
    get_contacts,
    subscribe_presence,
    media_frames,
    media_set_mic,
    media_set_camera,
    media_devices,
    media_set_devices,
    media_set_processing,
    media_screens,
    media_share_screen,
    media_end,
);

/// The start option the start-at-login entry passes.
const MINIMIZED_FLAG: &str = "--minimized";

/// Builds the Tauri app from `tauri.conf.json` and runs it until the last window closes.
pub fn run() {
    let options = StartOptions::parse(std::env::args().skip(1), |k| std::env::var(k).ok());
    tauri::Builder::default()
        // The incoming-call notification, with Accept and Decline (alerting.rs).
        .plugin(tauri_plugin_notification::init())
        // Start at login (Settings; off unless turned on): the entry starts us minimised.
        .plugin(
            tauri_plugin_autostart::Builder::new()
                .app_name("Tincan")
                .arg(MINIMIZED_FLAG)
                .build(),
        )
        .setup(move |app| {
            let profile = match options.profile.clone() {
                Some(p) => p,
                None => app.path().app_data_dir()?,
            };
            // Owner only: the embedded server's database holds password hashes and its
            // token-signing secret.
            profile::create_private_dir(&profile)?;
            app.manage(
                state::AppState::new(profile, options.server.clone())
                    .with_ca_file(options.ca_file.clone()),
            );
            app.manage(options.media_state());
            alerting::init(app.handle());
            tray::build(app.handle());
            if options.minimized {
                if let Some(window) = app.get_webview_window("main") {
                    window.minimize()?;
                }
            }
            Ok(())
        })
        .invoke_handler(invoke_handler())
        .run(tauri::generate_context!())
        .expect("the Tauri runtime failed to start (is a display available?)");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> StartOptions {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        StartOptions::parse(args.iter().map(|s| s.to_string()), |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn the_media_bind_flag_reaches_the_media_state() {
        let o = parse(&["--media-bind", "127.0.0.1:0"], &[]);
        assert_eq!(o.media_state().bind().as_deref(), Some("127.0.0.1:0"));
        let o = parse(&[], &[("TINCAN_MEDIA_BIND", "127.0.0.1:0")]);
        assert_eq!(o.media_state().bind().as_deref(), Some("127.0.0.1:0"));
        assert_eq!(parse(&[], &[]).media_state().bind(), None);
    }

    #[test]
    fn the_start_at_login_flag_starts_minimized() {
        assert!(parse(&[MINIMIZED_FLAG], &[]).minimized);
        assert!(!parse(&[], &[]).minimized);
    }

    #[test]
    fn flags_are_read_in_both_forms_and_unknown_ones_skipped() {
        let o = parse(
            &["--foo", "--server", "http://h:1", "--profile=/tmp/p"],
            &[],
        );
        assert_eq!(o.server.as_deref(), Some("http://h:1"));
        assert_eq!(o.profile, Some(PathBuf::from("/tmp/p")));
    }

    #[test]
    fn ca_file_comes_from_the_flag_or_the_environment() {
        let o = parse(
            &["--ca-file", "/tmp/ca.pem"],
            &[("TINCAN_CA_FILE", "/env.pem")],
        );
        assert_eq!(o.ca_file, Some(PathBuf::from("/tmp/ca.pem")));
        let o = parse(&[], &[("TINCAN_CA_FILE", "/env.pem")]);
        assert_eq!(o.ca_file, Some(PathBuf::from("/env.pem")));
        assert_eq!(parse(&[], &[]).ca_file, None);
    }

    const INDEX_HTML: &str = include_str!("../../ui/index.html");
    const OPENIM_JS: &str = include_str!("../../ui/openim.js");
    const OPENIM_DTS: &str = include_str!("../../ui/openim.d.ts");
    const TESTIDS_MD: &str = include_str!("../../docs/ui-testids.md");

    #[test]
    fn every_static_testid_is_documented() {
        let ids: Vec<&str> = INDEX_HTML
            .split("data-testid=\"")
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap())
            .collect();
        assert!(ids.len() > 40, "{ids:?}");
        for id in ids {
            assert!(
                TESTIDS_MD.contains(&format!("`{id}`")),
                "data-testid {id} is not listed in docs/ui-testids.md"
            );
        }
    }

    #[test]
    fn openim_js_knows_every_event_the_page_receives() {
        for name in tincan_sdk::protocol::EVENTS {
            if *name == "onReceiveMediaSignal" {
                continue; // for the media engine, not emitted to the page
            }
            assert!(
                OPENIM_JS.contains(&format!("'{name}'")),
                "openim.js lacks {name}"
            );
            assert!(
                OPENIM_DTS.contains(&format!("{name}:")),
                "openim.d.ts lacks {name}"
            );
        }
        assert!(OPENIM_JS.contains(&format!("'{}'", events::CONNECTION_STATE_CHANGED)));
        assert!(OPENIM_JS.contains(&format!("'{}'", events::CALL_STATE_CHANGED)));
    }

    #[test]
    fn openim_js_invokes_only_registered_commands() {
        let invoked: Vec<&str> = OPENIM_JS
            .split("call('")
            .skip(1)
            .chain(OPENIM_JS.split("invoke('").skip(1))
            .map(|rest| rest.split('\'').next().unwrap())
            .collect();
        for c in &invoked {
            assert!(
                COMMANDS.contains(c),
                "openim.js invokes unknown command {c}"
            );
        }
        for c in COMMANDS {
            assert!(
                invoked.contains(c),
                "command {c} is not offered by openim.js"
            );
        }
    }

    #[test]
    fn env_fills_what_flags_leave_out() {
        let o = parse(
            &["--server", "http://flag"],
            &[
                ("TINCAN_SERVER", "http://env"),
                ("TINCAN_PROFILE", "/tmp/e"),
            ],
        );
        assert_eq!(o.server.as_deref(), Some("http://flag"));
        assert_eq!(o.profile, Some(PathBuf::from("/tmp/e")));
        assert_eq!(parse(&[], &[]), StartOptions::default());
    }
}
