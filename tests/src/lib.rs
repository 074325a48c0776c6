//! `invigil-e2e`: what cross-process tests share, and (in `tests/`) the end-to-end tests of the
//! desktop app in a real window.
//!
//! # Layout
//!
//! ```text
//! powercut   a disk that can lose power: an in-memory FUSE filesystem that keeps only what was
//!            fsynced across a simulated power cut
//! server     the real invigil-server on a free port, a proxy that cuts or freezes the network,
//!            staff driving the server over HTTP
//! tls        certificates made at test time: a school's CA and the server certificates it issues
//! webdriver  the desktop app in a real window: Xvfb, tauri-driver, WebKitWebDriver; the staff
//!            console in headless Chromium under chromedriver; a small W3C WebDriver client for both
//! ```

pub mod powercut;
pub mod server;
pub mod tls;
pub mod webdriver;
