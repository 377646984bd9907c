//! RGI applications as tower services.
//!
//! An [`rgi::Application`] or [`rgi_async::AsyncApplication`] served as a
//! `tower_service::Service<http::Request<B>>` for any `http_body::Body`:
//! the per-request work of an RGI server on hyper, written once.

#![forbid(unsafe_code)]
