//! ironsecd: configuration, the wiring from config to the fast path, the control socket, and
//! the status model shared with ironsecctl.

pub mod config;
pub mod control;
pub mod daemon;
pub mod logging;
pub mod plane;
pub mod sdnotify;
pub mod status;
pub mod tables;
