//! One WebSocket connection: opening it, signing in, and the writer task that owns its
//! sending half. The driver decides what to do with connections; this module only
//! makes them.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tincan_protocol::{ClientFrame, LoginParams, LoginReply, Request, RequestId, ServerFrame};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tracing::{debug, warn};

use crate::endpoint::Endpoint;
use crate::error::SdkError;
use crate::options::ConnectOptions;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Frames queued for the socket writer. Backpressure: when full, the driver waits,
/// which stops it taking new requests, which makes callers wait (see above). Nothing
/// is dropped.
const OUTBOUND_CAPACITY: usize = 64;

/// The request id of `login`; ordinary requests count up from 1.
pub(crate) const LOGIN_REQUEST_ID: u64 = 0;

/// Tincan frames are small (the largest are history and contact lists); these keep a
/// connection's memory modest while leaving room for those.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(8 << 20))
        .max_frame_size(Some(8 << 20))
}

/// One open, signed-in WebSocket.
pub(crate) struct Connection {
    /// Frames from the server.
    pub(crate) reader: SplitStream<Ws>,
    /// Frames to the server, through the writer task.
    pub(crate) writer: mpsc::Sender<Message>,
    /// The writer task; it ends when the socket fails or `writer` is dropped.
    pub(crate) writer_task: JoinHandle<()>,
}

impl Connection {
    /// Drops a broken connection at once (no close handshake).
    pub(crate) fn abort(self) {
        self.writer_task.abort();
    }
}

/// Owns the sink: writes queued frames, flushing once per batch.
fn spawn_writer(mut sink: SplitSink<Ws, Message>) -> (mpsc::Sender<Message>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Message>(OUTBOUND_CAPACITY);
    let task = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if let Err(e) = sink.feed(msg).await {
                debug!(error = %e, "websocket write failed");
                return;
            }
            while let Ok(msg) = rx.try_recv() {
                if let Err(e) = sink.feed(msg).await {
                    debug!(error = %e, "websocket write failed");
                    return;
                }
            }
            if let Err(e) = sink.flush().await {
                debug!(error = %e, "websocket flush failed");
                return;
            }
        }
        // The driver let go of this connection: finish the close handshake.
        let _ = sink.close().await;
    });
    (tx, task)
}

/// Opens the WebSocket and signs in. Used for the first connection and every
/// reconnect; bounded by `options.connect_timeout`.
pub(crate) async fn establish(
    endpoint: &Endpoint,
    login: &LoginParams,
    options: &ConnectOptions,
) -> Result<(Connection, LoginReply), SdkError> {
    let url = endpoint.ws_url();
    let connector = match endpoint.is_tls() {
        true => Some(Connector::Rustls(crate::tls::client_config(
            options.ca_file.as_deref(),
        )?)),
        false => None,
    };
    let attempt = async {
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            url.as_str(),
            Some(ws_config()),
            true,
            connector,
        )
        .await
        .map_err(|e| open_failed(endpoint, &url, e))?;
        let (sink, reader) = ws.split();
        let (writer, writer_task) = spawn_writer(sink);
        let mut conn = Connection {
            reader,
            writer,
            writer_task,
        };
        let operation_id = format!("login-{}", uuid::Uuid::new_v4().simple());
        let frame = ClientFrame {
            request_id: RequestId::Num(LOGIN_REQUEST_ID),
            operation_id: operation_id.clone(),
            request: Request::Login(login.clone()),
            no_reply_on_success: false,
        };
        conn.writer
            .send(Message::text(frame.to_json()))
            .await
            .map_err(|_| SdkError::Connect("the connection broke before login".into()))?;
        let reply = read_login_reply(&mut conn.reader).await?;
        debug!(%operation_id, user = %reply.user_id, device = %reply.device_id, "signed in");
        Ok((conn, reply))
    };
    tokio::time::timeout(options.connect_timeout, attempt)
        .await
        .map_err(|_| SdkError::Connect(format!("{url}: no login reply in time")))?
}

/// Why the WebSocket did not open: a refused certificate, a coded refusal from the
/// server (its JSON body, e.g. too many connections), or the transport error.
fn open_failed(endpoint: &Endpoint, url: &str, e: WsError) -> SdkError {
    if let WsError::Http(resp) = &e {
        let body = resp.body().as_deref().unwrap_or_default();
        if let Ok(w) = serde_json::from_slice::<WireBody>(body) {
            if let Some(code) = tincan_protocol::ErrCode::from_code(w.err_code) {
                return SdkError::Server(tincan_protocol::WireError::new(code, w.err_msg));
            }
        }
    }
    crate::tls::classify(endpoint.host(), &e, || {
        SdkError::Connect(format!("{url}: {e}"))
    })
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireBody {
    err_code: u32,
    #[serde(default)]
    err_msg: String,
}

async fn read_login_reply(reader: &mut SplitStream<Ws>) -> Result<LoginReply, SdkError> {
    loop {
        let text = match reader.next().await {
            None => return Err(SdkError::Connect("the server closed during login".into())),
            Some(Err(e)) => return Err(SdkError::Connect(format!("during login: {e}"))),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                return Err(SdkError::Connect(format!(
                    "during login: {}",
                    describe_close(frame.as_ref())
                )))
            }
            Some(Ok(_)) => continue,
        };
        match ServerFrame::parse(&text) {
            Ok(ServerFrame::Response {
                request_id, result, ..
            }) => match request_id {
                // No id: the server could not read our frame, so this is about login.
                Some(RequestId::Num(LOGIN_REQUEST_ID)) | None => {
                    let raw = result?;
                    return serde_json::from_str(raw.get())
                        .map_err(|e| SdkError::Protocol(format!("login reply: {e}")));
                }
                Some(other) => warn!(?other, "a reply to no request before login; ignored"),
            },
            // The server sends events only after the login reply; pending invitations
            // are resynced from that reply anyway.
            Ok(ServerFrame::Event(e)) => debug!(event = e.name(), "event before login; ignored"),
            Err(e) => return Err(SdkError::Protocol(format!("during login: {e}"))),
        }
    }
}

pub(crate) fn describe_close(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(f) if !f.reason.is_empty() => {
            format!(
                "the server closed the connection ({}: {})",
                f.code, f.reason
            )
        }
        Some(f) => format!("the server closed the connection ({})", f.code),
        None => "the server closed the connection".to_owned(),
    }
}
