//! The physical ceiling: a bare tokio-tungstenite relay. Each client says which pair
//! it belongs to in its first frame; from then on every frame one side sends is
//! forwarded unchanged to the other. No parsing, no state machine, no storage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Peers = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Message>>>>;

/// Serves the relay on `listener` forever.
pub async fn serve(listener: TcpListener) {
    let peers: Peers = Arc::default();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let peers = peers.clone();
        tokio::spawn(async move {
            let Ok(ws) =
                tokio_tungstenite::accept_async_with_config(stream, Some(crate::ws_config())).await
            else {
                return;
            };
            let (mut sink, mut stream) = ws.split();
            // First frame: "<me> <partner>".
            let Some(Ok(Message::Text(hello))) = stream.next().await else {
                return;
            };
            let mut it = hello.split_whitespace();
            let (me, partner) = match (it.next(), it.next()) {
                (Some(a), Some(b)) => (a.to_owned(), b.to_owned()),
                _ => return,
            };
            let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
            {
                // When the second of a pair arrives, tell both that frames will now reach
                // the other side.
                let mut map = peers.lock().unwrap();
                if let Some(other) = map.get(&partner) {
                    let _ = other.send(Message::text("ready"));
                    let _ = tx.send(Message::text("ready"));
                }
                map.insert(me.clone(), tx);
            }
            let writer = tokio::spawn(async move {
                while let Some(m) = rx.recv().await {
                    if sink.feed(m).await.is_err() {
                        return;
                    }
                    while let Ok(m) = rx.try_recv() {
                        if sink.feed(m).await.is_err() {
                            return;
                        }
                    }
                    if sink.flush().await.is_err() {
                        return;
                    }
                }
            });
            let mut partner_tx = None;
            while let Some(Ok(msg)) = stream.next().await {
                if !msg.is_text() {
                    continue;
                }
                if partner_tx.is_none() {
                    partner_tx = peers.lock().unwrap().get(&partner).cloned();
                }
                if let Some(tx) = &partner_tx {
                    let _ = tx.send(msg);
                }
            }
            peers.lock().unwrap().remove(&me);
            writer.abort();
        });
    }
}
