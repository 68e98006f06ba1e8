//! Wire snapshots: one golden JSON file per message in `tests/golden/`. A change to
//! the wire format fails here and shows up in review as a diff of those files.
//! Regenerate deliberately with `UPDATE_GOLDEN=1 cargo test -p tincan-protocol`.

use std::path::PathBuf;

use serde_json::{json, Value};
use tincan_protocol::*;

fn check(name: &str, actual: Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    let pretty = serde_json::to_string_pretty(&actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &pretty).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(pretty, expected, "wire format of {name} changed");
}

fn uid(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn invitation() -> Invitation {
    Invitation {
        inviter_user_id: "alice".into(),
        invitee_user_id_list: vec![uid("bob")],
        group_id: String::new(),
        room_id: "6f1c2a9e4b7d4c1f9a3e2d1c0b9a8f7e".into(),
        timeout: 30,
        media_type: MediaType::Video,
        session_type: SESSION_SINGLE,
        platform_id: 7,
        custom_data: Some("{\"topic\":\"standup\"}".into()),
        initiate_time: Some(1_795_660_000_000),
        busy_line_user_id_list: vec![],
    }
}

fn participant(u: &str) -> ParticipantInfo {
    ParticipantInfo {
        user_info: PublicUserInfo {
            user_id: uid(u),
            nickname: u[..1].to_uppercase() + &u[1..],
            face_url: String::new(),
        },
        group_info: None,
    }
}

fn info(op: &str) -> SignalingInfo {
    SignalingInfo {
        invitation: invitation(),
        op_user_id: uid(op),
        user_id: uid(op),
        op_user_platform_id: 7,
        participant: Some(participant(op)),
        offline_push_info: None,
        event_time: 1_795_660_001_234,
    }
}

fn request(method_data: (&str, Value)) -> Value {
    let (method, data) = method_data;
    let text =
        json!({"requestID": 7, "operationID": "op-1", "method": method, "data": data}).to_string();
    let frame = ClientFrame::parse(&text).unwrap_or_else(|e| panic!("{method}: {e:?}"));
    let back: Value = serde_json::from_str(&frame.to_json()).unwrap();
    assert_eq!(back["method"], method);
    back
}

#[test]
fn every_request_matches_its_snapshot() {
    let inv = serde_json::to_value(invitation()).unwrap();
    let cases: Vec<(&str, Value)> = vec![
        (
            "login",
            json!({"token": "eyJrIjoibG9naW4ifQ.c2ln", "deviceID": "laptop-1", "platformID": 7, "protocolVersion": 1}),
        ),
        (
            "signalingInvite",
            json!({"invitation": {"inviterUserID": "alice", "inviteeUserIDList": ["bob"], "groupID": "", "roomID": "", "timeout": 30, "mediaType": "video", "sessionType": 1, "platformID": 7}}),
        ),
        (
            "signalingInviteInGroup",
            json!({"invitation": {"inviteeUserIDList": ["bob", "carol"], "groupID": "team", "roomID": "", "timeout": 30, "mediaType": "audio", "sessionType": 2}, "offlinePushInfo": {"title": "Team call"}}),
        ),
        (
            "signalingAccept",
            json!({"opUserID": "bob", "invitation": inv}),
        ),
        (
            "signalingReject",
            json!({"opUserID": "bob", "invitation": inv}),
        ),
        (
            "signalingCancel",
            json!({"opUserID": "alice", "invitation": inv}),
        ),
        (
            "signalingHungUp",
            json!({"opUserID": "bob", "invitation": inv}),
        ),
        ("signalingGetRoomByGroupID", json!({"groupID": "team"})),
        (
            "signalingGetTokenByRoomID",
            json!({"roomID": "6f1c2a9e4b7d4c1f9a3e2d1c0b9a8f7e"}),
        ),
        ("getSignalingInvitationInfoStartApp", json!({})),
        (
            "signalingSendCustomSignal",
            json!({"roomID": "6f1c2a9e4b7d4c1f9a3e2d1c0b9a8f7e", "customInfo": "{\"raiseHand\":true}"}),
        ),
        (
            "signalingSendMediaSignal",
            json!({"roomID": "6f1c2a9e4b7d4c1f9a3e2d1c0b9a8f7e", "token": "eyJrIjoicm9vbSJ9.c2ln", "toUserID": "bob", "payload": {"type": "offer", "sdp": "v=0\r\n..."}}),
        ),
        ("getCallHistory", json!({"limit": 20})),
        ("getContacts", json!({"after": "bob", "count": 200})),
        ("subscribePresence", json!({"userIDList": ["bob", "carol"]})),
        ("ping", json!({})),
    ];
    assert_eq!(cases.len(), METHODS.len(), "every method has a snapshot");
    for c in cases {
        let name = format!("request.{}", c.0);
        check(&name, request(c));
    }
}

fn response<T: serde::Serialize>(data: &T) -> Value {
    serde_json::from_str(&response_json(Some(&RequestId::Num(7)), "op-1", Ok(data))).unwrap()
}

#[test]
fn every_reply_matches_its_snapshot() {
    let room = RoomId::new("6f1c2a9e4b7d4c1f9a3e2d1c0b9a8f7e").unwrap();
    let ice = vec![
        IceServer {
            urls: vec!["stun:stun.example.org:3478".into()],
            username: None,
            credential: None,
        },
        IceServer {
            urls: vec!["turn:turn.example.org:3478?transport=udp".into()],
            username: Some("1795663600:bob".into()),
            credential: Some("q0Fz3m0Jc1lJb0xQZ2x3cGxUZ2c=".into()),
        },
    ];
    check(
        "reply.login",
        response(&LoginReply {
            user_id: uid("bob"),
            device_id: DeviceId::new("laptop-1").unwrap(),
            protocol_version: PROTOCOL_VERSION,
            server_time: 1_795_660_000_000,
            current_call: Some(CurrentCall {
                invitation: invitation(),
                room_id: room.clone(),
                token: "eyJrIjoicm9vbSJ9.c2ln".into(),
                live_url: "ws://calls.example.org:7070/ws".into(),
                ice_servers: ice.clone(),
                participant: vec![participant("alice"), participant("bob")],
            }),
            pending_invitations: vec![info("carol")],
        }),
    );
    check(
        "reply.signalingInvite",
        response(&InviteReply {
            room_id: room.clone(),
            token: "eyJrIjoicm9vbSJ9.c2ln".into(),
            live_url: "ws://calls.example.org:7070/ws".into(),
            busy_line_user_id_list: vec![uid("carol")],
            ice_servers: ice.clone(),
        }),
    );
    check(
        "reply.signalingAccept",
        response(&AcceptReply {
            room_id: room.clone(),
            token: "eyJrIjoicm9vbSJ9.c2ln".into(),
            live_url: "ws://calls.example.org:7070/ws".into(),
            ice_servers: ice,
        }),
    );
    check("reply.empty", response(&Empty {}));
    check(
        "reply.signalingGetRoomByGroupID",
        response(&RoomByGroupReply {
            invitation: Some(invitation()),
            participant: vec![participant("alice")],
            room_id: room.to_string(),
        }),
    );
    check(
        "reply.getSignalingInvitationInfoStartApp",
        response(&StartAppReply {
            invitation: Some(invitation()),
            offline_push_info: None,
        }),
    );
    check(
        "reply.getCallHistory",
        response(&HistoryReply {
            records: vec![CallRecord {
                room_id: room,
                inviter_user_id: uid("alice"),
                group_id: String::new(),
                media_type: MediaType::Video,
                session_type: 1,
                invitees: vec![InviteeRecord {
                    user_id: uid("bob"),
                    outcome: InviteeOutcome::Accepted,
                    answer_time: Some(1_795_660_004_000),
                }],
                participant_user_id_list: vec![uid("alice"), uid("bob")],
                initiate_time: 1_795_660_000_000,
                answer_time: Some(1_795_660_004_000),
                end_time: 1_795_660_300_000,
                end_reason: EndReason::HungUp,
            }],
        }),
    );
    check(
        "reply.getContacts",
        response(&ContactsReply {
            users: vec![participant("bob").user_info],
            groups: vec![GroupInfo {
                group_id: GroupId::new("team").unwrap(),
                group_name: "Team".into(),
                member_user_id_list: vec![uid("alice"), uid("bob")],
            }],
            has_more: true,
            next_cursor: Some(uid("bob")),
        }),
    );
    check(
        "reply.subscribePresence",
        response(&PresenceReply {
            presence: vec![
                UserPresence {
                    user_id: uid("bob"),
                    status: PresenceStatus::InCall,
                },
                UserPresence {
                    user_id: uid("carol"),
                    status: PresenceStatus::Offline,
                },
            ],
        }),
    );
    check(
        "reply.ping",
        response(&PongReply {
            server_time: 1_795_660_000_000,
        }),
    );
    let err = WireError::new(
        ErrCode::AlreadyAnswered,
        "this call was already answered on another of your devices",
    );
    check(
        "reply.error",
        serde_json::from_str(&response_json::<Empty>(
            Some(&RequestId::Str("7".into())),
            "op-1",
            Err(&err),
        ))
        .unwrap(),
    );
}

#[test]
fn every_event_matches_its_snapshot() {
    let group_inv = Invitation {
        group_id: "team".into(),
        session_type: SESSION_GROUP,
        invitee_user_id_list: vec![uid("bob"), uid("carol")],
        ..invitation()
    };
    let room_info = RoomParticipantInfo {
        invitation: group_inv,
        group_id: "team".into(),
        participant: vec![participant("alice"), participant("bob")],
        op_user_id: uid("bob"),
        user_id: uid("bob"),
        event_time: 1_795_660_001_234,
    };
    let events = vec![
        Event::ReceiveNewInvitation(info("alice")),
        Event::InviteeAccepted(info("bob")),
        Event::InviteeAcceptedByOtherDevice(info("bob")),
        Event::InviteeRejected(info("bob")),
        Event::InviteeRejectedByOtherDevice(info("bob")),
        Event::InvitationCancelled(info("alice")),
        Event::InvitationTimeout(SignalingInfo { op_user_platform_id: 0, ..info("bob") }),
        Event::HangUp(info("bob")),
        Event::RoomParticipantConnected(room_info.clone()),
        Event::RoomParticipantDisconnected(room_info),
        Event::ReceiveCustomSignal(CustomSignalInfo {
            room_id: RoomId::new("6f1c2a9e4b7d4c1f9a3e2d1c0b9a8f7e").unwrap(),
            custom_info: "{\"raiseHand\":true}".into(),
            op_user_id: uid("alice"),
            user_id: uid("alice"),
            event_time: 1_795_660_001_234,
        }),
        Event::ReceiveMediaSignal(MediaSignalInfo {
            room_id: RoomId::new("6f1c2a9e4b7d4c1f9a3e2d1c0b9a8f7e").unwrap(),
            from_user_id: uid("alice"),
            payload: serde_json::value::RawValue::from_string("{\"type\":\"candidate\",\"candidate\":\"candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\",\"sdpMid\":\"0\"}".into()).unwrap(),
        }),
        Event::KickedOffline(KickedInfo { reason: "this device signed in again on another connection".into() }),
        Event::PresenceChanged(UserPresence { user_id: uid("bob"), status: PresenceStatus::Online }),
    ];
    assert_eq!(events.len(), EVENTS.len(), "every event has a snapshot");
    for e in events {
        let text = e.to_frame_json();
        match ServerFrame::parse(&text).unwrap() {
            ServerFrame::Event(back) => assert_eq!(back, e),
            other => panic!("{other:?}"),
        }
        check(
            &format!("event.{}", e.name()),
            serde_json::from_str(&text).unwrap(),
        );
    }
}
