//! The HTTP side: the WebSocket upgrade, and JSON endpoints to register and sign in.
//!
//! Every endpoint answers `{"errCode", "errMsg", "data"}` like the WebSocket API, with
//! an HTTP status that matches (400 bad input, 401 wrong password, 403 not allowed,
//! 409 taken, 503 full).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use tracing::{info, warn};

use tincan_protocol::{ErrCode, LoginBody, RegisterBody, UserId, WireError, WS_PATH};

use crate::auth::{hash_password, verify_password};
use crate::conn::HARD_FRAME_LIMIT;
use crate::store::StoreError;
use crate::throttle::Refused;
use crate::AppState;

/// tungstenite reads into a buffer of this size; it is allocated for every connection,
/// so it is a large part of an idle one (tungstenite's default is 128 KiB). tungstenite
/// also reads at most this much per call; `batched_io.rs` serves those
/// small reads from one large `recv`, so a longer frame costs no extra system calls.
pub const WS_READ_BUFFER: usize = 512;
/// Writes are flushed once this much is buffered.
pub const WS_WRITE_BUFFER: usize = 0;
/// A connection whose unsent output exceeds this fails instead of growing without bound.
pub const WS_MAX_WRITE_BUFFER: usize = 1024 * 1024;

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(WS_PATH, get(ws_upgrade))
        .route("/api/register", post(register))
        .route("/api/login", post(login))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics))
        // Before any handler, the upgrade included: refuses web pages, rebound hosts
        // and undeclared bodies (docs/security.md).
        .layer(axum::middleware::from_fn_with_state(
            state.access.clone(),
            crate::origin::guard,
        ))
        .with_state(state)
}

fn reply<T: Serialize>(status: StatusCode, result: Result<T, WireError>) -> Response {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<T> {
        err_code: u32,
        err_msg: String,
        data: Option<T>,
    }
    let body = match result {
        Ok(data) => Body {
            err_code: 0,
            err_msg: String::new(),
            data: Some(data),
        },
        Err(e) => Body {
            err_code: e.code.code(),
            err_msg: e.message,
            data: None,
        },
    };
    (status, axum::Json(body)).into_response()
}

pub(crate) fn fail(status: StatusCode, code: ErrCode, msg: impl Into<String>) -> Response {
    reply::<()>(status, Err(WireError::new(code, msg)))
}

// `ticket`: the connection's place among those not signed in (see gate.rs); the
// WebSocket gives it back once it signs in.
async fn ws_upgrade(
    State(state): State<Arc<AppState>>,
    ticket: Option<axum::Extension<crate::gate::Ticket>>,
    ws: WebSocketUpgrade,
) -> Response {
    let Ok(permit) = state.conn_slots.clone().try_acquire_owned() else {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrCode::Internal,
            "the server is at its connection limit; try again later",
        );
    };
    ws.read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_write_buffer_size(WS_MAX_WRITE_BUFFER)
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| crate::conn::serve(socket, state, permit, ticket.map(|t| t.0)))
}

// The error is a finished response the handler returns at once.
#[allow(clippy::result_large_err)]
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    tincan_protocol::account::parse_body(body)
        .map_err(|e| fail(StatusCode::BAD_REQUEST, e.code, e.message))
}

const MIN_PASSWORD: usize = 6;
const MAX_PASSWORD: usize = 256;

/// The address a request is counted under for throttling (`None` only for requests
/// that did not come through the accept loop, which has none to give).
type Peer = Option<axum::Extension<crate::gate::Ticket>>;

fn address(peer: &Peer) -> Option<crate::gate::AddressKey> {
    peer.as_ref().map(|t| t.0.address())
}

/// The answer to a throttled request: the code, the wait in the message and in
/// `Retry-After`.
fn throttled(code: ErrCode, r: Refused) -> Response {
    let mut resp = fail(StatusCode::TOO_MANY_REQUESTS, code, r.message());
    resp.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from(r.retry_after_secs()),
    );
    resp
}

/// The hashing pool is full.
fn busy(state: &AppState) -> Response {
    let (threads, queue) = state.hashers.size();
    let mut resp = fail(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrCode::ServerBusy,
        format!(
            "the server is busy checking other passwords ({threads} at a time, {queue} waiting); retry after 1 s"
        ),
    );
    resp.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    resp
}

fn throttle(state: &AppState) -> std::sync::MutexGuard<'_, crate::throttle::Throttle> {
    state
        .throttle
        .lock()
        .expect("the throttle lock is never poisoned: its methods do not panic")
}

async fn register(State(state): State<Arc<AppState>>, peer: Peer, body: Bytes) -> Response {
    if !state.allow_registration {
        return fail(
            StatusCode::FORBIDDEN,
            ErrCode::NoPermission,
            "registration is closed on this server; ask its operator for an account",
        );
    }
    let b: RegisterBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&b.password.chars().count()) {
        return fail(
            StatusCode::BAD_REQUEST,
            ErrCode::Args,
            format!("password: use {MIN_PASSWORD} to {MAX_PASSWORD} characters"),
        );
    }
    let nickname = b.nickname.unwrap_or_else(|| b.user_id.to_string());
    if let Err(why) = tincan_protocol::limits::check_nickname(&nickname) {
        return fail(StatusCode::BAD_REQUEST, ErrCode::Args, why);
    }
    let now = tokio::time::Instant::now();
    if let Err(r) = throttle(&state).register(address(&peer), now) {
        info!(?r, "registration refused: rate limit");
        return throttled(ErrCode::RateLimited, r);
    }
    let store = state.store.clone();
    let user = b.user_id.clone();
    let result = state
        .hashers
        .run(move || {
            let hash = hash_password(&b.password);
            store.add_user(&user, &nickname, Some(&hash))
        })
        .await;
    let Ok(result) = result else {
        return busy(&state);
    };
    match result {
        Ok(()) => {
            info!(user = %b.user_id, "registered");
            reply(StatusCode::OK, Ok(state.issue_token(b.user_id)))
        }
        Err(StoreError::Conflict(_)) => fail(
            StatusCode::CONFLICT,
            ErrCode::Args,
            format!("user ID {} is taken; choose another", b.user_id),
        ),
        Err(e) => {
            warn!(error = %e, "register failed");
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrCode::Internal,
                "the server's storage failed; try again",
            )
        }
    }
}

async fn login(State(state): State<Arc<AppState>>, peer: Peer, body: Bytes) -> Response {
    let b: LoginBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let wrong = || {
        fail(
            StatusCode::UNAUTHORIZED,
            ErrCode::NoPermission,
            "wrong user ID or password",
        )
    };
    let addr = address(&peer);
    // Refused before any password is checked, the right one included.
    if let Err(r) = throttle(&state).check_sign_in(&b.user_id, addr, tokio::time::Instant::now()) {
        info!(?r, "sign-in refused: too many failures");
        return throttled(ErrCode::SignInThrottled, r);
    }
    let Ok(user) = UserId::new(b.user_id.clone()) else {
        throttle(&state).sign_in_failed(&b.user_id, addr, tokio::time::Instant::now());
        return wrong();
    };
    let store = state.store.clone();
    let u = user.clone();
    let ok = state
        .hashers
        .run(move || -> Result<bool, StoreError> {
            Ok(match store.user(&u)? {
                Some(row) => row
                    .password_hash
                    .is_some_and(|h| verify_password(&b.password, &h)),
                None => {
                    // Spend the same time as a real check, so timing does not reveal who exists.
                    let _ = verify_password(&b.password, dummy_hash());
                    false
                }
            })
        })
        .await;
    let Ok(ok) = ok else {
        return busy(&state);
    };
    match ok {
        Ok(true) => {
            throttle(&state).sign_in_succeeded(user.as_str());
            info!(user = %user, "signed in over HTTP");
            reply(StatusCode::OK, Ok(state.issue_token(user)))
        }
        Ok(false) => {
            throttle(&state).sign_in_failed(user.as_str(), addr, tokio::time::Instant::now());
            wrong()
        }
        Err(e) => {
            warn!(error = %e, "sign-in failed");
            fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrCode::Internal,
                "the server's storage failed; try again",
            )
        }
    }
}

/// A hash to check unknown users' passwords against, made once.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("no such user"))
}

/// Prometheus metrics (`--metrics`), in the text format; 404 when they are off.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if !state.metrics {
        return fail(
            StatusCode::NOT_FOUND,
            ErrCode::NotFound,
            "metrics are off on this server (start it with --metrics)",
        );
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.board.render_metrics(),
    )
        .into_response()
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    #[derive(Serialize)]
    struct Health {
        status: &'static str,
        connections: usize,
    }
    reply(
        StatusCode::OK,
        Ok(Health {
            status: "ok",
            connections: state.max_connections - state.conn_slots.available_permits(),
        }),
    )
}
