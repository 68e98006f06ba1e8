//! What nodes tell each other through Redis, and its encoding. Pure.
//!
//! Two kinds of channel: [`HUB_CHANNEL`], read by the node that leads (requests and
//! closed connections from every other node's clients), and one per node
//! ([`node_channel`]), read by that node (frames for its clients). A message is a short
//! header line and, where there is one, a client frame's text as it is: the text is
//! never decoded or escaped on the way, so a 2.5 KB `customInfo` costs a copy, not a
//! JSON pass.
//!
//! Redis is shared infrastructure, so a message that does not read is logged and
//! dropped by the caller, never trusted further.
//!
//! A message to a node names the leader that sent it: a node takes frames for its
//! clients only from the leader it follows, so a leader that stood still past its lease
//! and goes on for a moment before it learns it was replaced reaches no client.

use super::role::NodeNo;
use crate::hub::ConnId;

/// Read by the leader.
pub const HUB_CHANNEL: &str = "tincan:hub";

/// Read by node `n`.
pub fn node_channel(n: NodeNo) -> String {
    format!("tincan:node:{n}")
}

/// Connection ids carry their node's number in the bits above this many, so that the
/// leader knows where to send a frame without a lookup, and a node started again (with a
/// new number) never receives frames meant for its previous life's connections.
pub const CONN_BITS: u32 = 40;

/// The node a connection id belongs to.
pub fn node_of(conn: ConnId) -> NodeNo {
    conn >> CONN_BITS
}

/// The first connection id of node `n`.
pub fn first_conn(n: NodeNo) -> ConnId {
    (n << CONN_BITS) + 1
}

/// To the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToLeader {
    /// A client's request frame, as it came.
    Request {
        /// From.
        conn: ConnId,
        /// The frame's text.
        text: String,
    },
    /// A client's connection closed; its peer was last heard `silent_ms` before.
    Closed {
        /// Which.
        conn: ConnId,
        /// Since its peer was last heard.
        silent_ms: u64,
    },
}

/// To one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToNode {
    /// Send `text` to each of these connections.
    Send {
        /// Recipients (all on the node the message is for).
        to: Vec<ConnId>,
        /// One JSON text frame.
        text: String,
    },
    /// Send `text` to `conn`, then close it with `reason` (code 1008).
    Close {
        /// Which.
        conn: ConnId,
        /// The close frame's reason.
        reason: String,
        /// A last frame.
        text: String,
    },
}

/// Why a bus message did not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable cluster message: {0}")]
pub struct BadMessage(&'static str);

fn split_header(msg: &str) -> Result<(&str, &str), BadMessage> {
    msg.split_once('\n').ok_or(BadMessage("no header line"))
}

fn number(s: &str) -> Result<u64, BadMessage> {
    s.parse().map_err(|_| BadMessage("a number expected"))
}

impl ToLeader {
    /// `R <conn>\n<text>` or `C <conn> <silent_ms>\n`.
    pub fn encode(&self) -> String {
        match self {
            ToLeader::Request { conn, text } => format!("R {conn}\n{text}"),
            ToLeader::Closed { conn, silent_ms } => format!("C {conn} {silent_ms}\n"),
        }
    }

    /// The inverse of [`ToLeader::encode`].
    pub fn decode(msg: &str) -> Result<ToLeader, BadMessage> {
        let (head, body) = split_header(msg)?;
        let mut words = head.split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("R"), Some(conn), None, None) => Ok(ToLeader::Request {
                conn: number(conn)?,
                text: body.to_owned(),
            }),
            (Some("C"), Some(conn), Some(silent), None) if body.is_empty() => {
                Ok(ToLeader::Closed {
                    conn: number(conn)?,
                    silent_ms: number(silent)?,
                })
            }
            _ => Err(BadMessage("unknown header")),
        }
    }
}

impl ToNode {
    /// From leader `leader`: `S <leader> <conn>,<conn>…\n<text>` or
    /// `X <leader> <conn> <reason>\n<text>`.
    pub fn encode(&self, leader: NodeNo) -> String {
        match self {
            ToNode::Send { to, text } => {
                let list: Vec<String> = to.iter().map(|c| c.to_string()).collect();
                format!("S {leader} {}\n{text}", list.join(","))
            }
            ToNode::Close { conn, reason, text } => {
                format!("X {leader} {conn} {}\n{text}", reason.replace('\n', " "))
            }
        }
    }

    /// The inverse of [`ToNode::encode`]: the sending leader and the message.
    pub fn decode(msg: &str) -> Result<(NodeNo, ToNode), BadMessage> {
        let (head, body) = split_header(msg)?;
        let (kind, rest) = head.split_once(' ').ok_or(BadMessage("unknown header"))?;
        let (leader, rest) = rest.split_once(' ').ok_or(BadMessage("no sender"))?;
        let leader = number(leader)?;
        match kind {
            "S" => {
                let to = rest.split(',').map(number).collect::<Result<Vec<_>, _>>()?;
                Ok((
                    leader,
                    ToNode::Send {
                        to,
                        text: body.to_owned(),
                    },
                ))
            }
            "X" => {
                let (conn, reason) = rest.split_once(' ').ok_or(BadMessage("no close reason"))?;
                Ok((
                    leader,
                    ToNode::Close {
                        conn: number(conn)?,
                        reason: reason.to_owned(),
                        text: body.to_owned(),
                    },
                ))
            }
            _ => Err(BadMessage("unknown header")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_reads_back_as_it_was_written() {
        let text = "{\"requestID\":\"1\",\"data\":\"two\\nlines\"}\nand a raw newline".to_owned();
        for m in [
            ToLeader::Request {
                conn: first_conn(7),
                text: text.clone(),
            },
            ToLeader::Closed {
                conn: 12,
                silent_ms: 1500,
            },
        ] {
            assert_eq!(ToLeader::decode(&m.encode()), Ok(m));
        }
        for m in [
            ToNode::Send {
                to: vec![1, first_conn(3), 99],
                text: text.clone(),
            },
            ToNode::Close {
                conn: 5,
                reason: "signed in on another connection".into(),
                text,
            },
        ] {
            assert_eq!(ToNode::decode(&m.encode(4)), Ok((4, m)));
        }
    }

    #[test]
    fn garbage_is_refused_not_guessed() {
        for bad in [
            "",
            "R 1",
            "R x\n{}",
            "C 1\n",
            "C 1 2\nextra",
            "Z 1\n",
            "S 1,,2\n{}",
            "S 3 1,,2\n{}",
            "S 1\n{}",
            "S x 1\n{}",
            "X 1\n",
            "X 3 1\n",
        ] {
            assert!(
                ToLeader::decode(bad).is_err() && ToNode::decode(bad).is_err(),
                "{bad:?}"
            );
        }
        assert!(ToLeader::decode("S 1\n{}").is_err());
        assert!(ToNode::decode("R 1 2\n{}").is_err());
    }

    #[test]
    fn a_connection_id_names_its_node() {
        assert_eq!(node_of(first_conn(0)), 0);
        assert_eq!(node_of(first_conn(5) + 1_000_000), 5);
        assert_ne!(first_conn(1), first_conn(2));
    }
}
