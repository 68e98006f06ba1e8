//! Tests of the portal path that need no desktop: pixel orders, the frame slot, the
//! capture side, error wording, and the answers without a bus or without a portal (a
//! private `dbus-daemon` with nothing on it).

use std::os::unix::net::UnixListener;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use super::fakes::*;
use super::slot::{copy_as_bgrx, PixelOrder};
use super::stream::{format_param, pixel_order};
use super::*;
use ::pipewire::spa;

const ORDERS: [PixelOrder; 4] = [
    PixelOrder::Bgrx,
    PixelOrder::Rgbx,
    PixelOrder::Xrgb,
    PixelOrder::Xbgr,
];

#[test]
fn every_accepted_byte_order_becomes_the_same_bgrx() {
    let (w, h) = (8, 4);
    let reference = quadrants(PixelOrder::Bgrx, w, h, w * 4, COLOURS);
    for order in ORDERS {
        // Rows padded to 40 bytes, as a compositor may align them.
        let src = quadrants(order, w, h, 40, COLOURS);
        let mut dst = vec![0; w * h * 4];
        assert!(copy_as_bgrx(order, &src, w, h, 40, &mut dst), "{order:?}");
        for (i, (got, want)) in dst.chunks(4).zip(reference.chunks(4)).enumerate() {
            assert_eq!(got[..3], want[..3], "{order:?}, pixel {i}");
        }
    }
}

#[test]
fn spa_formats_map_to_their_byte_order_and_others_are_refused() {
    use spa::param::video::VideoFormat as F;
    assert_eq!(pixel_order(F::BGRx), Some(PixelOrder::Bgrx));
    assert_eq!(pixel_order(F::BGRA), Some(PixelOrder::Bgrx));
    assert_eq!(pixel_order(F::RGBx), Some(PixelOrder::Rgbx));
    assert_eq!(pixel_order(F::RGBA), Some(PixelOrder::Rgbx));
    assert_eq!(pixel_order(F::xRGB), Some(PixelOrder::Xrgb));
    assert_eq!(pixel_order(F::ABGR), Some(PixelOrder::Xbgr));
    assert_eq!(pixel_order(F::I420), None);
    assert_eq!(pixel_order(F::RGB), None);
}

#[test]
fn a_short_or_misshapen_buffer_is_refused_not_read_past() {
    let mut dst = vec![0; 4 * 2 * 4];
    let src = vec![0; 4 * 4 + 15]; // one byte short of two rows
    assert!(!copy_as_bgrx(PixelOrder::Rgbx, &src, 4, 2, 16, &mut dst));
    let src = vec![0; 64];
    assert!(
        !copy_as_bgrx(PixelOrder::Bgrx, &src, 4, 2, 8, &mut dst),
        "stride < row"
    );
    assert!(
        !copy_as_bgrx(PixelOrder::Bgrx, &src, 0, 2, 16, &mut dst),
        "no width"
    );
    let mut wrong = vec![0; 10];
    assert!(
        !copy_as_bgrx(PixelOrder::Bgrx, &src, 4, 2, 16, &mut wrong),
        "dst size"
    );
}

/// BT.601 video-range luma of an RGB colour, as the converter computes it.
fn luma(rgb: [u8; 3]) -> i32 {
    let [r, g, b] = rgb.map(i32::from);
    ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
}

#[test]
fn a_crop_region_is_clipped_to_the_picture_and_a_useless_one_ignored() {
    use super::slot::crop_area;
    assert_eq!(crop_area(None, 64, 32), (0, 0, 64, 32));
    assert_eq!(crop_area(Some((8, 4, 16, 8)), 64, 32), (8, 4, 16, 8));
    // Past the right and bottom edges: clipped.
    assert_eq!(crop_area(Some((60, 30, 16, 8)), 64, 32), (60, 30, 4, 2));
    // Negative origin: from the edge.
    assert_eq!(crop_area(Some((-5, -5, 10, 10)), 64, 32), (0, 0, 10, 10));
    // Outside the picture, or empty: the whole picture.
    assert_eq!(crop_area(Some((64, 0, 10, 10)), 64, 32), (0, 0, 64, 32));
    assert_eq!(crop_area(Some((0, 0, 0, 10)), 64, 32), (0, 0, 64, 32));
}

#[test]
fn a_cropped_region_is_copied_with_the_buffers_stride() {
    use super::slot::crop_area;
    // A 4×2 window at (2, 1) of an 8×4 RGBx buffer; only it must be copied.
    let (w, h, stride) = (8usize, 4usize, 32usize);
    let mut src = vec![0u8; stride * h];
    for y in 0..h {
        for x in 0..w {
            src[y * stride + x * 4..][..4].copy_from_slice(&[x as u8, y as u8, 0, 0]);
        }
    }
    let (x, y, cw, ch) = crop_area(Some((2, 1, 4, 2)), w, h);
    let mut dst = vec![0; cw * ch * 4];
    assert!(copy_as_bgrx(
        PixelOrder::Rgbx,
        &src[y * stride + x * 4..],
        cw,
        ch,
        stride,
        &mut dst
    ));
    // RGBx → BGRx: red (the x coordinate) lands in byte 2, green (y) in byte 1.
    let first = (dst[2], dst[1]);
    let last = (dst[dst.len() - 2], dst[dst.len() - 3]);
    assert_eq!(first, (2, 1));
    assert_eq!(last, (5, 2));
}

#[test]
fn the_newest_picture_wins_and_a_taken_one_is_not_taken_again() {
    let slot = FrameSlot::default();
    assert!(matches!(slot.take(), Taken::Nothing));
    for value in 1..=3u8 {
        slot.put(2, 1, |dst| {
            dst.fill(value);
            true
        });
    }
    match slot.take() {
        Taken::Picture(p) => {
            assert_eq!((p.width, p.height), (2, 1));
            assert_eq!(p.data, vec![3; 8], "the newest of three pictures");
        }
        other => panic!("expected a picture, got {other:?}"),
    }
    assert!(matches!(slot.take(), Taken::Nothing));
    assert_eq!(slot.size(), Some((2, 1)));
}

#[test]
fn an_unreadable_picture_is_dropped_and_the_slot_keeps_working() {
    let slot = FrameSlot::default();
    slot.put(2, 2, |_| false);
    assert!(matches!(slot.take(), Taken::Nothing));
    assert_eq!(slot.size(), None);
    slot.put(1, 1, |dst| {
        dst.copy_from_slice(&[1, 2, 3, 4]);
        true
    });
    assert!(matches!(slot.take(), Taken::Picture(p) if p.data == [1, 2, 3, 4]));
}

#[test]
fn buffers_are_recycled_not_reallocated() {
    let slot = FrameSlot::default();
    slot.put(16, 16, |_| true);
    let Taken::Picture(first) = slot.take() else {
        panic!("no picture")
    };
    let address = first.data.as_ptr();
    slot.recycle(first.data);
    slot.put(16, 16, |_| true);
    let Taken::Picture(second) = slot.take() else {
        panic!("no picture")
    };
    assert_eq!(
        second.data.as_ptr(),
        address,
        "the recycled buffer took the picture"
    );
}

#[test]
fn an_ended_stream_is_reported_with_its_first_reason() {
    let slot = FrameSlot::default();
    slot.put(1, 1, |_| true);
    slot.end("PipeWire stream ended: node gone".into());
    slot.end("PipeWire stream ended".into());
    assert!(matches!(slot.take(), Taken::Ended(r) if r == "PipeWire stream ended: node gone"));
}

/// A portal share with no portal behind it: the capture side on its own slot.
fn screen_on(slot: Arc<FrameSlot>) -> PortalScreen {
    PortalScreen {
        slot,
        current: None,
        portal_size: Some((1280, 720)),
        pipewire: None,
        session: None,
        connection: None,
    }
}

#[test]
fn capture_is_black_until_the_first_picture_then_converts_the_newest_at_the_frame_size() {
    let slot = Arc::new(FrameSlot::default());
    let mut screen = screen_on(slot.clone());
    assert_eq!(
        screen.native_size(),
        Some((1280, 720)),
        "the portal's size first"
    );
    let mut frame = I420::new(8, 4);
    screen.capture(&mut frame, 0, 0).unwrap();
    assert!(
        frame.y().iter().all(|&y| y == 16),
        "black before any picture"
    );

    // An RGBx picture twice the frame's size, as PipeWire might send it.
    let (w, h) = (16, 8);
    let src = quadrants(PixelOrder::Rgbx, w, h, w * 4, COLOURS);
    slot.put(w, h, |dst| {
        copy_as_bgrx(PixelOrder::Rgbx, &src, w, h, w * 4, dst)
    });
    assert_eq!(
        screen.native_size(),
        Some((16, 8)),
        "then what PipeWire sends"
    );
    screen.capture(&mut frame, 1, 0).unwrap();
    let y = |x: usize, row: usize| i32::from(frame.y()[row * 8 + x]);
    for (q, (x, row)) in [(1, 0), (6, 0), (1, 3), (6, 3)].into_iter().enumerate() {
        assert!(
            (y(x, row) - luma(COLOURS[q])).abs() <= 1,
            "quadrant {q}: luma {} for {:?}",
            y(x, row),
            COLOURS[q]
        );
    }
    // Nothing new: the same picture again, not black.
    let before = frame.data.clone();
    frame.data.fill(0);
    screen.capture(&mut frame, 2, 0).unwrap();
    assert_eq!(frame.data, before);

    slot.end("PipeWire stream ended".into());
    let e = screen.capture(&mut frame, 3, 0).unwrap_err();
    assert!(e.to_string().contains("PipeWire stream ended"), "{e}");
}

#[test]
fn portal_errors_say_what_failed() {
    let declined = portal_error(ashpd::Error::Response(ResponseError::Cancelled));
    assert!(
        declined.to_string().contains("the user declined"),
        "{declined}"
    );
    let declined = portal_error(ashpd::Error::Portal(ashpd::PortalError::Cancelled(
        "no".into(),
    )));
    assert!(
        declined.to_string().contains("the user declined"),
        "{declined}"
    );
    let missing = portal_error(ashpd::Error::PortalNotFound(
        zbus::names::OwnedInterfaceName::try_from("org.freedesktop.portal.ScreenCast").unwrap(),
    ));
    assert!(
        missing.to_string().contains("no desktop portal"),
        "{missing}"
    );
    let other = portal_error(ashpd::Error::Response(ResponseError::Other));
    assert!(
        other.to_string().contains("the desktop portal failed"),
        "{other}"
    );
}

#[test]
fn the_session_bus_is_found_from_the_environment_or_the_runtime_dir() {
    assert_eq!(session_bus_address(None, None), None);
    assert_eq!(session_bus_address(Some("".into()), None), None);
    assert_eq!(
        session_bus_address(Some("unix:path=/x".into()), Some("/nonexistent".into())),
        Some("unix:path=/x".into())
    );
    let dir = tempdir();
    assert_eq!(session_bus_address(None, Some(dir.path().into())), None);
    let socket = dir.path().join("bus");
    let _listener = UnixListener::bind(&socket).unwrap();
    assert_eq!(
        session_bus_address(None, Some(dir.path().into())),
        Some(format!("unix:path={}", socket.display()))
    );
}

#[test]
fn no_portal_without_a_session_bus() {
    let dir = tempdir();
    let missing = format!("unix:path={}", dir.path().join("no-such-bus").display());
    assert!(!available_at(&missing, PROBE_TIMEOUT));
    let e = open_at(&missing, &VideoSettings::default(), PROBE_TIMEOUT).unwrap_err();
    assert!(
        e.to_string().starts_with("device: no desktop portal"),
        "{e}"
    );
}

#[test]
fn a_bus_that_never_answers_is_given_up_on_not_waited_for() {
    let dir = tempdir();
    let socket = dir.path().join("silent-bus");
    // Accepts connections (the kernel's backlog) and never says a word.
    let _listener = UnixListener::bind(&socket).unwrap();
    let address = format!("unix:path={}", socket.display());
    let started = Instant::now();
    assert!(!available_at(&address, Duration::from_millis(300)));
    // A bound, not a speed goal: the probe must not wait on the bus for ever.
    assert!(started.elapsed() < Duration::from_secs(30));
    let e = open_at(
        &address,
        &VideoSettings::default(),
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no answer"), "{e}");
}

#[test]
fn a_session_bus_without_a_portal_is_no_portal_and_open_says_so_plainly() {
    let bus = PrivateBus::start();
    assert!(!available_at(&bus.address, PROBE_TIMEOUT));
    let e = open_at(&bus.address, &VideoSettings::default(), PROBE_TIMEOUT).unwrap_err();
    assert!(
        e.to_string().starts_with("device: no desktop portal"),
        "{e}"
    );
}

#[test]
fn closing_the_portals_dialog_is_the_user_declining() {
    let bus = PrivateBus::start();
    let _portal = fake_portal(&bus.address, Choice::Decline, None);
    assert!(
        available_at(&bus.address, PROBE_TIMEOUT),
        "the fake portal offers ScreenCast"
    );
    let e = open_at(&bus.address, &VideoSettings::default(), PROBE_TIMEOUT).unwrap_err();
    assert!(e.to_string().contains("the user declined"), "{e}");
}

#[test]
fn a_granted_share_streams_through_pipewire_and_its_end_reaches_the_capture_side() {
    let bus = PrivateBus::start();
    // The PipeWire remote the portal hands out: a socket whose far end we hold and
    // close, as a PipeWire daemon going away would.
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let _portal = fake_portal(&bus.address, Choice::Share, Some(OwnedFd::from(theirs)));
    let mut screen =
        open_at(&bus.address, &VideoSettings::default(), PROBE_TIMEOUT).expect("the share starts");
    assert_eq!(
        screen.native_size(),
        Some((1280, 720)),
        "the portal's stream size"
    );
    let mut frame = I420::new(16, 8);
    screen
        .capture(&mut frame, 0, 0)
        .expect("no picture yet is not an error");
    assert!(
        frame.y().iter().all(|&y| y == 16),
        "black until PipeWire sends a picture"
    );

    drop(ours);
    // PipeWire's thread sees the remote hang up, ends the stream and stops its loop.
    let thread = screen.pipewire.as_mut().unwrap().handle.take().unwrap();
    let (joined, stopped) = sync_channel(1);
    std::thread::spawn(move || {
        let _ = thread.join();
        let _ = joined.send(());
    });
    stopped
        .recv_timeout(Duration::from_secs(20))
        .expect("PipeWire's thread stops when its remote hangs up");
    let e = screen.capture(&mut frame, 1, 0).unwrap_err();
    assert!(e.to_string().contains("PipeWire stream ended"), "{e}");
}

#[test]
fn the_format_we_offer_pipewire_is_a_valid_pod() {
    let bytes = format_param(10).unwrap();
    let pod = spa::pod::Pod::from_bytes(&bytes).expect("a pod");
    assert!(pod.is_object());
}

#[test]
fn stopping_a_share_stops_pipewire_and_closes_the_portal_session() {
    let bus = PrivateBus::start();
    let daemon = PipeWireDaemon::start();
    let portal = fake_portal(&bus.address, Choice::Share, Some(daemon.connect()));
    let screen =
        open_at(&bus.address, &VideoSettings::default(), PROBE_TIMEOUT).expect("the share starts");
    // Dropping joins PipeWire's thread and closes the session: on a thread of its own, so
    // a hang fails the test instead of stalling it.
    let (dropped, done) = sync_channel(1);
    std::thread::spawn(move || {
        drop(screen);
        let _ = dropped.send(());
    });
    done.recv_timeout(Duration::from_secs(10))
        .expect("stopping a share returns");
    let calls: Vec<String> = portal.calls.try_iter().collect();
    assert!(
        calls
            .iter()
            .any(|c| c == "org.freedesktop.portal.Session.Close"),
        "the portal session was not closed: {calls:?}"
    );
}

#[test]
fn pictures_from_pipewire_reach_the_capture_side_in_their_colours() {
    let bus = PrivateBus::start();
    let daemon = PipeWireDaemon::start();
    let (quit, quit_rx) = ::pipewire::channel::channel::<()>();
    let producer_remote = daemon.connect();
    let producer = std::thread::spawn(move || produce_screen(producer_remote, quit_rx));
    let _portal = fake_portal(&bus.address, Choice::Share, Some(daemon.connect()));
    let mut screen =
        open_at(&bus.address, &VideoSettings::default(), PROBE_TIMEOUT).expect("the share starts");

    // The capture thread asks at its own pace; ask the same way, a bounded number of times.
    let mut frame = I420::new(32, 16);
    let mut seen = false;
    for counter in 0..200 {
        screen.capture(&mut frame, counter, 0).unwrap();
        if screen.native_size() == Some((PRODUCED.0 as usize, PRODUCED.1 as usize))
            && frame.y()[0] != 16
        {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = quit.send(());
    producer.join().unwrap();
    assert!(seen, "no picture from PipeWire within 10 s");
    let y = |x: usize, row: usize| i32::from(frame.y()[row * 32 + x]);
    for (q, (x, row)) in [(4, 2), (28, 2), (4, 13), (28, 13)].into_iter().enumerate() {
        assert!(
            (y(x, row) - luma(COLOURS[q])).abs() <= 1,
            "quadrant {q}: luma {} for {:?}",
            y(x, row),
            COLOURS[q]
        );
    }
}
