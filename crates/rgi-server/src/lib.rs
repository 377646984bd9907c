//! `rgi-server`: the production reference RGI server on tokio and hyper.

#![deny(unsafe_code)]

pub mod proxy_protocol;
pub mod strict;
