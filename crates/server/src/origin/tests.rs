//! Unit tests of the policy: every refusal, and what passes.

use super::*;

fn loopback() -> SocketAddr {
    "127.0.0.1:7070".parse().unwrap()
}

fn facts<'a>(method: &'a str, path: &'a str) -> RequestFacts<'a> {
    RequestFacts {
        method,
        path,
        host: Some("127.0.0.1:7070"),
        content_type: Some("application/json"),
        ..RequestFacts::default()
    }
}

fn default_loopback() -> Policy {
    Policy::new(vec![], None, None, loopback(), None)
}

#[test]
fn requests_without_origin_pass() {
    let p = default_loopback();
    assert_eq!(p.check(&facts("GET", "/ws")), Ok(()));
    assert_eq!(p.check(&facts("POST", "/api/login")), Ok(()));
}

#[test]
fn any_origin_is_refused_unless_listed() {
    let p = default_loopback();
    for origin in ["http://evil.example", "null", "tauri://localhost", ""] {
        let r = p.check(&RequestFacts {
            origin: Some(origin),
            ..facts("GET", "/ws")
        });
        assert_eq!(r, Err(Refusal::ForeignOrigin(origin.into())), "{origin}");
    }
    let listed = Policy::new(
        vec!["https://App.example.org/".parse().unwrap()],
        None,
        None,
        loopback(),
        None,
    );
    let ok = RequestFacts {
        origin: Some("https://app.example.org"),
        ..facts("GET", "/ws")
    };
    assert_eq!(listed.check(&ok), Ok(()));
    let other_port = RequestFacts {
        origin: Some("https://app.example.org:8443"),
        ..facts("GET", "/ws")
    };
    assert!(listed.check(&other_port).is_err());
}

#[test]
fn null_and_wildcard_origins_cannot_be_listed() {
    for bad in [
        "null",
        "*",
        "app.example.org",
        "https://a.example/path",
        "https://",
    ] {
        assert!(bad.parse::<AllowedOrigin>().is_err(), "{bad}");
    }
}

#[test]
fn a_loopback_server_answers_only_to_loopback_names_by_default() {
    let p = default_loopback();
    for host in [
        "127.0.0.1:7070",
        "localhost:7070",
        "LOCALHOST",
        "[::1]:7070",
    ] {
        let r = p.check(&RequestFacts {
            host: Some(host),
            ..facts("GET", "/healthz")
        });
        assert_eq!(r, Ok(()), "{host}");
    }
    for host in [
        "evil.example:7070",
        "evil.example",
        "127.0.0.1.evil.example:7070",
        "localhost:notaport",
        "",
    ] {
        let r = p.check(&RequestFacts {
            host: Some(host),
            ..facts("GET", "/healthz")
        });
        assert_eq!(r, Err(Refusal::ForeignHost(host.into())), "{host}");
    }
    // No Host at all is no browser.
    let r = p.check(&RequestFacts {
        host: None,
        ..facts("GET", "/healthz")
    });
    assert_eq!(r, Ok(()));
}

#[test]
fn a_loopback_server_also_answers_to_its_public_url_host() {
    let p = Policy::new(
        vec![],
        None,
        None,
        loopback(),
        Some("wss://Calls.example.org/tincan"),
    );
    let r = p.check(&RequestFacts {
        host: Some("calls.example.org"),
        ..facts("GET", "/ws")
    });
    assert_eq!(r, Ok(()));
}

#[test]
fn a_network_server_answers_to_any_host_unless_told() {
    let lan: SocketAddr = "0.0.0.0:7070".parse().unwrap();
    let p = Policy::new(vec![], None, None, lan, None);
    assert_eq!(p.hosts, HostRule::Any);
    let told = Policy::new(
        vec![],
        Some(vec!["calls.example.org".parse().unwrap()]),
        None,
        lan,
        None,
    );
    let r = told.check(&RequestFacts {
        host: Some("10.0.0.5:7070"),
        ..facts("GET", "/ws")
    });
    assert!(matches!(r, Err(Refusal::ForeignHost(_))));
    let star = Policy::new(
        vec![],
        Some(vec!["*".parse().unwrap()]),
        None,
        loopback(),
        None,
    );
    assert_eq!(star.hosts, HostRule::Any);
}

#[test]
fn hosts_with_a_port_match_that_port_only() {
    let p = Policy::new(
        vec![],
        Some(vec![
            HostPattern::with_port("127.0.0.1", 7070),
            "[::1]:7070".parse().unwrap(),
        ]),
        None,
        loopback(),
        None,
    );
    for (host, ok) in [
        ("127.0.0.1:7070", true),
        ("[::1]:7070", true),
        ("127.0.0.1:7071", false),
        ("127.0.0.1", false),
        ("[::1]", false),
    ] {
        let r = p.check(&RequestFacts {
            host: Some(host),
            ..facts("GET", "/ws")
        });
        assert_eq!(r.is_ok(), ok, "{host}: {r:?}");
    }
}

#[test]
fn posts_must_be_declared_json() {
    let p = default_loopback();
    for (t, ok) in [
        (Some("application/json"), true),
        (Some("Application/JSON; charset=utf-8"), true),
        (Some("text/plain"), false),
        (Some("text/plain; application/json"), false),
        (Some("application/x-www-form-urlencoded"), false),
        (Some("multipart/form-data; boundary=x"), false),
        (Some("application/jsonx"), false),
        (None, false),
    ] {
        let r = p.check(&RequestFacts {
            content_type: t,
            ..facts("POST", "/api/register")
        });
        assert_eq!(r.is_ok(), ok, "{t:?}: {r:?}");
        if !ok {
            assert_eq!(r.unwrap_err().status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
    }
    // A GET has no body to declare.
    let r = p.check(&RequestFacts {
        content_type: None,
        ..facts("GET", "/healthz")
    });
    assert_eq!(r, Ok(()));
}

#[test]
fn an_embedded_server_wants_its_secret_on_account_requests_only() {
    let secret = LocalSecret::generate();
    let p = Policy::new(vec![], None, Some(secret.clone()), loopback(), None);
    for path in ACCOUNT_PATHS {
        assert_eq!(
            p.check(&facts("POST", path)),
            Err(Refusal::NoLocalSecret),
            "{path}"
        );
        let wrong = RequestFacts {
            local_secret: Some(b"guess"),
            ..facts("POST", path)
        };
        assert_eq!(p.check(&wrong), Err(Refusal::NoLocalSecret));
        let right = RequestFacts {
            local_secret: Some(secret.expose().as_bytes()),
            ..facts("POST", path)
        };
        assert_eq!(p.check(&right), Ok(()));
    }
    // The WebSocket needs a token, which only those requests hand out.
    assert_eq!(p.check(&facts("GET", "/ws")), Ok(()));
}

#[test]
fn the_secret_never_shows_in_debug_output() {
    let secret = LocalSecret::generate();
    let p = Policy::new(vec![], None, Some(secret.clone()), loopback(), None);
    assert!(!format!("{p:?}").contains(secret.expose()));
    assert_eq!(secret.expose().len(), 43);
    assert_ne!(secret.expose(), LocalSecret::generate().expose());
}

#[test]
fn messages_say_what_was_refused_and_echo_at_most_a_little() {
    let long = "x".repeat(5000);
    let m = Refusal::ForeignOrigin(long).message();
    assert!(m.contains("Origin") && m.len() < 400, "{m}");
    assert!(Refusal::ForeignHost("evil.example".into())
        .message()
        .contains("Host \"evil.example\""));
    assert!(Refusal::NotJson(Some("text/plain".into()))
        .message()
        .contains("application/json"));
}
