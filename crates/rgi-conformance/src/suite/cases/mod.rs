//! The cases of the server suite (the synchronous interface, the
//! asynchronous extensions, RGI 1.2's optional features), and the kit they
//! are built from.

pub(crate) mod asynchronous;
pub(crate) mod features;
pub(crate) mod kit;
pub(crate) mod synchronous;
