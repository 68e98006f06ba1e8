// Keeps a console window from opening next to the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // Calls start and stop threads; see crates/media/src/allocator.rs.
    tincan_media::use_one_malloc_arena();
    tincan_app::run()
}
