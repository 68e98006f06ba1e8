//! The window itself: it opens on the sign-in screen, has reached its backend and
//! shows the server it was started with.

use crate::harness;

#[test]
fn window_opens_on_sign_in_with_the_server_prefilled() {
    harness::run("window", |s| async move {
        // `signin` is set only after the page's app_info command came back.
        s.app.wait_state("signin").await;
        assert_eq!(s.app.text_of("app-title").await, "Tincan");
        let version = s.app.text_of("app-version").await;
        assert!(version.starts_with('v'), "version shown as {version:?}");
        assert_eq!(s.app.value_of("login-server").await, s.server.url);
        s.app.screenshot("signin").await;
    });
}
