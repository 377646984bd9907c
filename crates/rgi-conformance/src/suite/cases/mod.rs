//! The cases of the server suite, and the kit they are built from.

pub(crate) mod asynchronous;
pub(crate) mod kit;
pub(crate) mod synchronous;
