//! Integration tests: the real server on a free port, real SDK clients over real
//! WebSockets. One test binary, so the whole suite links once.

mod admission;
mod bad_input;
mod bandwidth;
mod calls;
mod cluster;
mod contacts;
mod cross_site;
mod devices;
mod group;
mod identity;
mod interop;
mod limits;
mod logs;
mod media;
mod metrics;
mod netlab;
mod postgres;
mod records;
mod restart;
mod screen;
mod server_process;
mod silent_peers;
mod throttling;
mod timers;
mod tls;
