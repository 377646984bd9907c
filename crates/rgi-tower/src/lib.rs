//! RGI applications as tower services.
//!
//! An [`rgi::Application`] or [`rgi_async::AsyncApplication`] served as a
//! `tower_service::Service<http::Request<B>>` for any `http_body::Body`:
//! the per-request work of an RGI server on hyper, written once.

// `deny`, not `forbid`: one `unsafe` call, tokio's `AsyncFd` registration
// of a borrowed descriptor in `caps::readiness`, is allowed where it stands
// with its safety argument.
#![deny(unsafe_code)]

pub mod caps;
