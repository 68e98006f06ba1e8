//! Who offers to whom, and what to do with each negotiation message: a state machine
//! per remote participant, without IO.
//!
//! The rule that never produces glare: of two participants, the one whose userID sorts
//! first always makes the offer; the other only answers. Either may learn of the other
//! first (server events and replies race on the two devices), so the answerer says
//! `hello` when it learns of the offerer, and the offerer offers on whichever comes first:
//! learning of the answerer, or its `hello`. ICE candidates that arrive before the remote
//! description is applied wait here and are released, in order, once it is.

use serde::{Deserialize, Serialize};

/// One negotiation message, as carried in `signalingSendMediaSignal`'s `payload`
/// (browser-shaped: `{"type":"offer","sdp":…}`, `{"type":"candidate","candidate":…}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Signal {
    /// From the answerer: "I am in the call; make your offer."
    Hello,
    /// From the answerer: "the network path failed; offer again with an ICE restart."
    Restart,
    Offer {
        sdp: String,
    },
    Answer {
        sdp: String,
    },
    Candidate(Candidate),
    /// What the sender is sending: the far end shows "muted" or "camera off", and
    /// labels the picture a shared screen. `screen` is absent from senders that predate
    /// sharing: read as false.
    State {
        mic: bool,
        camera: bool,
        #[serde(default)]
        screen: bool,
    },
    /// The sender gave up on media with this participant (it could not recover).
    Bye {
        reason: String,
    },
}

/// An ICE candidate in the browser's `RTCIceCandidateInit` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub candidate: String,
    #[serde(default, rename = "sdpMid")]
    pub sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_mline_index: Option<u16>,
}

/// Candidates kept while waiting for a description; more is a broken or hostile peer
/// (a real one gathers a handful).
const MAX_PENDING_CANDIDATES: usize = 64;
/// The longest `bye` reason passed on.
const MAX_REASON_CHARS: usize = 200;

/// This side's part in one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Offerer,
    Answerer,
}

impl Role {
    /// The rule: the smaller userID offers.
    pub fn between(me: &str, them: &str) -> Role {
        if me < them {
            Role::Offerer
        } else {
            Role::Answerer
        }
    }
}

/// What the driver must do next, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Send `signal` to the remote participant.
    Send(Signal),
    /// Create an offer (with an ICE restart when asked), set it locally and send it.
    Offer { ice_restart: bool },
    /// Apply the remote offer, create an answer, set it locally and send it.
    Answer { sdp: String },
    /// Apply the remote answer.
    ApplyAnswer { sdp: String },
    /// Give a remote candidate to ICE.
    AddCandidate(Candidate),
    /// The far end's send state changed.
    RemoteState {
        mic: bool,
        camera: bool,
        screen: bool,
    },
    /// The far end gave up; end media with it.
    Closed { reason: String },
}

/// Negotiation with one remote participant.
#[derive(Debug)]
pub struct Negotiation {
    role: Role,
    offered: bool,
    /// An offer of ours is out and its answer has not come: no second offer until it
    /// does (two offers in flight would answer each other out of order).
    awaiting_answer: bool,
    remote_set: bool,
    pending: Vec<Candidate>,
}

impl Negotiation {
    pub fn new(me: &str, them: &str) -> Negotiation {
        Negotiation {
            role: Role::between(me, them),
            offered: false,
            awaiting_answer: false,
            remote_set: false,
            pending: Vec::new(),
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// This side has just learnt that the remote participant is in the call.
    pub fn start(&mut self) -> Vec<Step> {
        match self.role {
            Role::Offerer => self.offer_once(),
            Role::Answerer => vec![Step::Send(Signal::Hello)],
        }
    }

    fn offer_once(&mut self) -> Vec<Step> {
        if self.offered {
            return Vec::new();
        }
        self.offered = true;
        self.awaiting_answer = true;
        vec![Step::Offer { ice_restart: false }]
    }

    /// An ICE restart offer, unless an offer is already out (it will do).
    fn restart_offer(&mut self) -> Vec<Step> {
        if self.awaiting_answer || !self.offered {
            return Vec::new();
        }
        self.awaiting_answer = true;
        vec![Step::Offer { ice_restart: true }]
    }

    /// The network path failed: the offerer restarts ICE; the answerer asks it to.
    pub fn restart(&mut self) -> Vec<Step> {
        match self.role {
            Role::Offerer => self.restart_offer(),
            Role::Answerer => vec![Step::Send(Signal::Restart)],
        }
    }

    /// The driver applied the remote description: buffered candidates may go in now.
    pub fn remote_description_set(&mut self) -> Vec<Step> {
        self.remote_set = true;
        self.pending.drain(..).map(Step::AddCandidate).collect()
    }

    /// A message from the remote participant. Messages that do not fit this side's role
    /// (an offer sent to the offerer) are a broken or hostile peer: `Err` says why.
    pub fn on_signal(&mut self, signal: Signal) -> Result<Vec<Step>, String> {
        Ok(match (signal, self.role) {
            (Signal::Hello, Role::Offerer) => self.offer_once(),
            (Signal::Restart, Role::Offerer) => self.restart_offer(),
            (Signal::Offer { sdp }, Role::Answerer) => vec![Step::Answer { sdp }],
            (Signal::Answer { sdp }, Role::Offerer) if self.awaiting_answer => {
                self.awaiting_answer = false;
                vec![Step::ApplyAnswer { sdp }]
            }
            (Signal::Candidate(c), _) if self.remote_set => vec![Step::AddCandidate(c)],
            (Signal::Candidate(_), _) if self.pending.len() >= MAX_PENDING_CANDIDATES => {
                return Err("too many candidates before any description".into())
            }
            (Signal::Candidate(c), _) => {
                self.pending.push(c);
                Vec::new()
            }
            (
                Signal::State {
                    mic,
                    camera,
                    screen,
                },
                _,
            ) => vec![Step::RemoteState {
                mic,
                camera,
                screen,
            }],
            (Signal::Bye { reason }, _) => {
                // Shown to a person: keep what the far end says short.
                let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
                vec![Step::Closed { reason }]
            }
            (Signal::Hello | Signal::Restart, Role::Answerer) => {
                return Err("both sides claim to answer (hello sent to the answerer)".into())
            }
            (Signal::Offer { .. }, Role::Offerer) => {
                return Err(
                    "an offer to the participant who offers (its userID sorts first)".into(),
                )
            }
            (Signal::Answer { .. }, _) => return Err("an answer to no offer".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_without_screen_from_an_older_sender_reads_as_not_a_screen() {
        let old: Signal = serde_json::from_str(r#"{"type":"state","mic":true,"camera":false}"#)
            .expect("a state without screen parses");
        assert_eq!(
            old,
            Signal::State {
                mic: true,
                camera: false,
                screen: false
            }
        );
        let new = serde_json::to_value(Signal::State {
            mic: true,
            camera: true,
            screen: true,
        })
        .unwrap();
        assert_eq!(
            new,
            serde_json::json!({"type": "state", "mic": true, "camera": true, "screen": true})
        );
    }

    fn cand(n: u8) -> Candidate {
        Candidate {
            candidate: format!("candidate:{n}"),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
        }
    }

    #[test]
    fn exactly_one_side_of_each_pair_offers() {
        let mut a = Negotiation::new("alice", "bob");
        let mut b = Negotiation::new("bob", "alice");
        assert_eq!(a.start(), vec![Step::Offer { ice_restart: false }]);
        assert_eq!(b.start(), vec![Step::Send(Signal::Hello)]);
        // Bob's hello arrives after Alice already offered: no second offer, no glare.
        assert_eq!(a.on_signal(Signal::Hello).unwrap(), vec![]);
    }

    #[test]
    fn the_offerer_offers_on_hello_when_it_learns_of_the_answerer_late() {
        let mut a = Negotiation::new("alice", "bob");
        assert_eq!(
            a.on_signal(Signal::Hello).unwrap(),
            vec![Step::Offer { ice_restart: false }]
        );
        assert_eq!(a.start(), vec![]);
    }

    #[test]
    fn candidates_wait_for_the_remote_description_and_keep_their_order() {
        let mut b = Negotiation::new("bob", "alice");
        assert_eq!(b.on_signal(Signal::Candidate(cand(1))).unwrap(), vec![]);
        assert_eq!(b.on_signal(Signal::Candidate(cand(2))).unwrap(), vec![]);
        let offer = b.on_signal(Signal::Offer { sdp: "v=0".into() }).unwrap();
        assert_eq!(offer, vec![Step::Answer { sdp: "v=0".into() }]);
        assert_eq!(
            b.remote_description_set(),
            vec![Step::AddCandidate(cand(1)), Step::AddCandidate(cand(2))]
        );
        assert_eq!(
            b.on_signal(Signal::Candidate(cand(3))).unwrap(),
            vec![Step::AddCandidate(cand(3))]
        );
    }

    #[test]
    fn messages_that_break_the_rule_are_refused() {
        let mut a = Negotiation::new("alice", "bob");
        assert!(a.on_signal(Signal::Offer { sdp: "v=0".into() }).is_err());
        assert!(
            a.on_signal(Signal::Answer { sdp: "v=0".into() }).is_err(),
            "answer before any offer"
        );
        let mut b = Negotiation::new("bob", "alice");
        assert!(b.on_signal(Signal::Hello).is_err());
    }

    #[test]
    fn a_restart_is_always_made_by_the_offerer() {
        let mut a = Negotiation::new("alice", "bob");
        let mut b = Negotiation::new("bob", "alice");
        a.start();
        a.on_signal(Signal::Answer { sdp: "v=0".into() }).unwrap();
        assert_eq!(b.restart(), vec![Step::Send(Signal::Restart)]);
        assert_eq!(
            a.on_signal(Signal::Restart).unwrap(),
            vec![Step::Offer { ice_restart: true }]
        );
    }

    #[test]
    fn both_sides_noticing_the_failure_make_one_restart_offer() {
        let mut a = Negotiation::new("alice", "bob");
        a.start();
        a.on_signal(Signal::Answer { sdp: "v=0".into() }).unwrap();
        // Alice notices, then Bob's request arrives while her offer is out.
        assert_eq!(a.restart(), vec![Step::Offer { ice_restart: true }]);
        assert_eq!(a.on_signal(Signal::Restart).unwrap(), vec![]);
        assert_eq!(
            a.on_signal(Signal::Answer { sdp: "v=1".into() }).unwrap(),
            vec![Step::ApplyAnswer { sdp: "v=1".into() }]
        );
        assert!(
            a.on_signal(Signal::Answer { sdp: "v=2".into() }).is_err(),
            "a second answer to one offer is refused"
        );
        // Once answered, a new failure may restart again.
        assert_eq!(a.restart(), vec![Step::Offer { ice_restart: true }]);
    }

    #[test]
    fn signals_have_the_browser_shape() {
        let json = serde_json::to_string(&Signal::Candidate(cand(1))).unwrap();
        assert_eq!(
            json,
            r#"{"type":"candidate","candidate":"candidate:1","sdpMid":"0","sdpMLineIndex":0}"#
        );
        let offer: Signal = serde_json::from_str(r#"{"type":"offer","sdp":"v=0"}"#).unwrap();
        assert_eq!(offer, Signal::Offer { sdp: "v=0".into() });
    }
}
