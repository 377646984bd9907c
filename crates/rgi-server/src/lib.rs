//! `rgi-server`: the production reference RGI server on tokio and hyper.

#![deny(unsafe_code)]

#[cfg(target_os = "linux")]
pub mod listen_fds;
pub mod proxy_protocol;
pub mod strict;
