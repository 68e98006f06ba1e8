//! A source that is still being opened: the desktop portal's dialog waits for the user,
//! for minutes if they walk away. Opening it on the capture thread would stall that thread
//! for as long, and with it everything that joins the thread: hanging up, turning the
//! camera off, switching back to the camera. So the portal is asked on a thread of its own
//! and the capture thread sends black pictures until the answer comes.
//!
//! Dropping a pending source (the call ended, the user picked another source) does not
//! wait for the dialog: the opener thread finishes on its own and drops what it opened,
//! which closes the portal session.

use std::sync::mpsc::{self, Receiver, TryRecvError};

use crate::error::MediaError;
use crate::pattern::I420;
use crate::source::VideoSource;

/// What an opener produces.
type Opened = Result<Box<dyn VideoSource>, MediaError>;

/// A source opened on another thread; black until it is open, then that source.
pub struct Pending {
    state: State,
}

enum State {
    Waiting(Receiver<Opened>),
    Open(Box<dyn VideoSource>),
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Waiting(_) => "waiting",
            State::Open(_) => "open",
        };
        f.debug_struct("Pending").field("state", &state).finish()
    }
}

impl Pending {
    /// Runs `open` on a new thread named `name`.
    pub fn start(
        name: &str,
        open: impl FnOnce() -> Opened + Send + 'static,
    ) -> Result<Pending, MediaError> {
        let (tx, rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // Nobody waiting any more: what was opened is dropped here, and closed.
                let _ = tx.send(open());
            })
            .map_err(|e| MediaError::Device(format!("could not start {name}: {e}")))?;
        Ok(Pending {
            state: State::Waiting(rx),
        })
    }
}

impl VideoSource for Pending {
    fn capture(
        &mut self,
        frame: &mut I420,
        counter: u32,
        captured_us: u64,
    ) -> Result<(), MediaError> {
        if let State::Waiting(rx) = &self.state {
            match rx.try_recv() {
                Ok(Ok(source)) => self.state = State::Open(source),
                Ok(Err(e)) => return Err(e),
                Err(TryRecvError::Empty) => {
                    frame.fill_black();
                    return Ok(());
                }
                Err(TryRecvError::Disconnected) => {
                    return Err(MediaError::Device(
                        "the screen could not be opened (its opener stopped)".into(),
                    ))
                }
            }
        }
        match &mut self.state {
            State::Open(source) => source.capture(frame, counter, captured_us),
            State::Waiting(_) => unreachable!("left the waiting state above"),
        }
    }

    fn native_size(&self) -> Option<(usize, usize)> {
        match &self.state {
            State::Open(source) => source.native_size(),
            State::Waiting(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;
    use std::time::{Duration, Instant};

    /// A source that paints every pixel `value` and has the size `size`.
    struct Flat {
        value: u8,
        size: (usize, usize),
        dropped: Option<mpsc::SyncSender<()>>,
    }

    impl VideoSource for Flat {
        fn capture(&mut self, frame: &mut I420, _: u32, _: u64) -> Result<(), MediaError> {
            frame.data.fill(self.value);
            Ok(())
        }
        fn native_size(&self) -> Option<(usize, usize)> {
            Some(self.size)
        }
    }

    impl Drop for Flat {
        fn drop(&mut self) {
            if let Some(tx) = self.dropped.take() {
                let _ = tx.send(());
            }
        }
    }

    const BOUND: Duration = Duration::from_secs(10);

    /// Captures until the frame's first byte is `value`, at most `BOUND`.
    fn capture_until(source: &mut Pending, frame: &mut I420, value: u8) {
        let start = Instant::now();
        for n in 0u32.. {
            source.capture(frame, n, 0).expect("capture");
            if frame.data[0] == value {
                return;
            }
            assert!(
                start.elapsed() < BOUND,
                "never saw {value}; last {}",
                frame.data[0]
            );
            std::thread::yield_now();
        }
    }

    #[test]
    fn black_while_the_dialog_is_open_then_the_opened_source_and_its_size() {
        let (answer, dialog) = sync_channel::<()>(0);
        let mut source = Pending::start("test opener", move || {
            let _ = dialog.recv();
            Ok(Box::new(Flat {
                value: 200,
                size: (1280, 1024),
                dropped: None,
            }) as Box<dyn VideoSource>)
        })
        .unwrap();
        let mut frame = I420::new(64, 32);
        frame.data.fill(1);
        source.capture(&mut frame, 0, 0).unwrap();
        assert_eq!((frame.data[0], frame.data[64 * 32]), (16, 128), "black");
        assert_eq!(source.native_size(), None);
        answer.send(()).unwrap();
        capture_until(&mut source, &mut frame, 200);
        assert_eq!(source.native_size(), Some((1280, 1024)));
    }

    #[test]
    fn a_refusal_reaches_the_capture_side_as_the_openers_error() {
        let mut source = Pending::start("test opener", || {
            Err(MediaError::Device(
                "the user declined to share a screen".into(),
            ))
        })
        .unwrap();
        let mut frame = I420::new(16, 16);
        let start = Instant::now();
        let error = loop {
            match source.capture(&mut frame, 0, 0) {
                Err(e) => break e,
                Ok(()) => assert!(start.elapsed() < BOUND, "no answer"),
            }
            std::thread::yield_now();
        };
        assert!(error.to_string().contains("declined"), "{error}");
    }

    #[test]
    fn dropping_while_the_dialog_is_open_returns_at_once_and_the_late_source_is_closed() {
        let (answer, dialog) = sync_channel::<()>(0);
        let (dropped_tx, dropped) = sync_channel::<()>(1);
        let source = Pending::start("test opener", move || {
            let _ = dialog.recv();
            Ok(Box::new(Flat {
                value: 1,
                size: (8, 8),
                dropped: Some(dropped_tx),
            }) as Box<dyn VideoSource>)
        })
        .unwrap();
        // The dialog is still open: dropping must not wait for it (it would, for up to
        // the dialog's timeout, if the capture thread had opened the portal itself).
        drop(source);
        answer.send(()).unwrap();
        dropped
            .recv_timeout(BOUND)
            .expect("what the opener produced after the drop is dropped (closed)");
    }
}
