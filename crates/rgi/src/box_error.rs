//! The boxed error every fallible step of an application returns; a leaf
//! module, so every other module can name it without depending on the
//! application's.

/// The error an application, a body or a middleware returns: any error that
/// can cross threads. The server logs it; the client never sees it
/// (`[RGI-FAIL-4]`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
