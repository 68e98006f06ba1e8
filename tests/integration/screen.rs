//! Screen sharing through the real server: alice shares a screen of a private Xvfb
//! showing a known picture (four coloured quadrants), bob decodes it, and the picture's
//! content and the "screen" flag are checked; then switching camera ↔ screen mid-call.
//! Skipped, with a message, where Xvfb is not installed.

use tincan_media::{census, screen, Census, DecodedFrame, ScreenKind, VideoInput, VideoSource};
use tincan_tests::media::{exclusive, one_to_one, small};
use tincan_tests::xvfb::{Xvfb, QUADRANTS};
use tincan_tests::TestServer;

/// Width of bob's RGBA copies: enough to see the quadrants and the picture's aspect.
const VIEW_WIDTH: u32 = 320;
/// Per-channel difference allowed after H.264 and two colour conversions.
const TOLERANCE: i32 = 40;

/// Whether `frame` shows the four quadrants: each quadrant's centre is its colour.
fn shows_quadrants(frame: &DecodedFrame) -> Result<(), String> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    for (q, expected) in QUADRANTS.iter().enumerate() {
        let (x, y) = ((q % 2) * w / 2 + w / 4, (q / 2) * h / 2 + h / 4);
        let px = &frame.rgba[(y * w + x) * 4..][..3];
        if (0..3).any(|c| (i32::from(px[c]) - i32::from(expected[c])).abs() > TOLERANCE) {
            return Err(format!(
                "quadrant {q} at ({x},{y}) of {w}×{h} is {px:?}, expected {expected:?}"
            ));
        }
    }
    Ok(())
}

#[test]
fn the_screens_of_a_display_and_its_named_windows_are_listed() {
    let Some(x) = Xvfb::start(1280, 720) else {
        return;
    };
    let _drawn = x.draw_quadrants("tincan test window");
    let list = screen::screens_on(&x.display).expect("list");
    let first = &list[0];
    assert_eq!(first.kind, ScreenKind::Screen);
    assert_eq!(first.id, format!("{}/screen:0", x.display));
    assert!(first.name.contains("1280×720"), "{first:?}");
    assert!(
        list.iter()
            .any(|s| s.kind == ScreenKind::Window && s.name == "tincan test window"),
        "the named window is listed: {list:?}"
    );
}

#[test]
fn a_local_x_server_is_read_through_shared_memory() {
    let Some(x) = Xvfb::start(320, 240) else {
        return;
    };
    let _drawn = x.draw_quadrants("tincan test window");
    let mut screen = screen::x11::X11Screen::open(Some(&x.display), "screen:0").expect("open");
    assert!(
        screen.shared_memory(),
        "MIT-SHM is used with a local server"
    );
    assert_eq!(screen.native_size(), Some((320, 240)));
    // The bottom-right quadrant, read through the segment: near white in I420.
    let mut frame = tincan_media::pattern::I420::new(320, 240);
    screen.capture(&mut frame, 0, 0).expect("capture");
    let luma = frame.y()[180 * 320 + 240];
    assert!(luma > 200, "bottom-right luma {luma}");
}

#[test]
fn a_display_that_does_not_exist_is_reported_plainly() {
    // A display number no test machine runs, one past what X can listen on (which
    // x11rb itself would overflow on), and no display number at all.
    for display in [":59001", ":65001", "nonsense", ":1x"] {
        let Err(e) = screen::open(&format!("{display}/screen:0"), &Default::default()) else {
            panic!("opened {display}, a display that does not exist");
        };
        let text = e.to_string();
        assert!(
            text.contains(display) && text.contains(screen::NO_SCREEN_CAPTURE),
            "{text}"
        );
    }
    let Err(e) = screen::screens_on(":59001") else {
        panic!("listed a display that does not exist");
    };
    assert!(e.to_string().contains(screen::NO_SCREEN_CAPTURE), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_screen_reaches_the_far_end_with_its_picture_and_the_screen_flag() {
    let Some(x) = Xvfb::start(1280, 720) else {
        return;
    };
    let _drawn = x.draw_quadrants("tincan test window");
    let _turn = exclusive().await;
    let server = TestServer::start().await;
    let alice = server.peer("alice", "alice-desktop").await;
    let bob = server.peer("bob", "bob-desktop").await;
    let shared = format!("{}/screen:0", x.display);
    let (a, mut b, _room) = one_to_one(alice, bob, |me, ice| {
        let mut c = small(me, ice, false);
        if me == "alice" {
            c.camera_device = VideoInput::Screen(shared.clone());
        } else {
            c.frame_rgba_width = VIEW_WIDTH;
        }
        c
    })
    .await;
    let got = b
        .wait_for("alice's screen with its quadrants, flagged a screen", |r| {
            let f = r.of("alice");
            f.screen == Some(true)
                && f.last_picture
                    .as_ref()
                    .is_some_and(|p| shows_quadrants(p).is_ok())
        })
        .await
        .of("alice");
    let picture = got.last_picture.expect("a picture");
    // Sent at the screen's own size (16:9), not the call's 320×240 camera size.
    assert_eq!((picture.width, picture.height), (VIEW_WIDTH, 180));
    assert!(got.counters.is_empty(), "no test-pattern stamp in a screen");
    assert!(
        a.received().unavailable.is_empty(),
        "nothing reported unavailable: {:?}",
        a.received().unavailable
    );
    a.close().await;
    b.close().await;
    assert_eq!(census(), Census::default(), "nothing is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_switches_camera_to_screen_and_back_mid_call() {
    let Some(x) = Xvfb::start(1280, 720) else {
        return;
    };
    let _drawn = x.draw_quadrants("tincan test window");
    let _turn = exclusive().await;
    let server = TestServer::start().await;
    let alice = server.peer("alice", "alice-desktop").await;
    let bob = server.peer("bob", "bob-desktop").await;
    let (a, mut b, _room) = one_to_one(alice, bob, |me, ice| {
        let mut c = small(me, ice, false);
        c.frame_rgba_width = VIEW_WIDTH;
        c
    })
    .await;
    // The camera (test pattern) first: stamped pictures at the camera's 4:3.
    let camera = b
        .wait_for("10 pictures from alice's camera", |r| {
            r.of("alice").counters.len() >= 10
        })
        .await
        .of("alice");
    let picture = camera.last_picture.expect("a camera picture");
    assert_eq!((picture.width, picture.height), (VIEW_WIDTH, 240));
    assert_ne!(camera.screen, Some(true));

    // To the screen: the decoder follows the new size, the flag says screen.
    a.media
        .set_camera_device(VideoInput::Screen(format!("{}/screen:0", x.display)));
    let shared = b
        .wait_for("alice's screen, flagged", |r| {
            let f = r.of("alice");
            f.screen == Some(true)
                && f.last_picture
                    .as_ref()
                    .is_some_and(|p| p.height == 180 && shows_quadrants(p).is_ok())
        })
        .await
        .of("alice");
    let before = shared.counters.len();

    // And back to the camera: stamped pictures again, at 4:3, the flag cleared.
    a.media.set_camera_device(VideoInput::TestPattern);
    let back = b
        .wait_for("alice's camera again, not flagged", |r| {
            let f = r.of("alice");
            f.screen == Some(false)
                && f.counters.len() >= before + 10
                && f.last_picture.as_ref().is_some_and(|p| p.height == 240)
        })
        .await
        .of("alice");
    assert!(back.in_order(), "{:?}", back.counters);
    a.close().await;
    b.close().await;
    assert_eq!(census(), Census::default(), "nothing is left behind");
}
