//! Why the test client could not run a request.

use std::io;

use rgi::EnvironError;

/// Why a [`TestRequest`](super::TestRequest) could not be built or run.
///
/// Every variant carries the offending value. An application's own failure
/// is never a `ClientError`: it is part of the response
/// ([`Ending`](super::Ending)), as a server would report it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The request target does not parse as a URI.
    #[error("request target {uri:?} is not a valid URI: {source}")]
    InvalidUri {
        /// The rejected target.
        uri: String,
        /// What the parser said.
        #[source]
        source: http::uri::InvalidUri,
    },
    /// The method is not an HTTP token.
    #[error("method {method:?} is not a valid HTTP method")]
    InvalidMethod {
        /// The rejected method.
        method: String,
    },
    /// A header name given as text is not an HTTP token.
    #[error("header name {name:?} is not a valid field name")]
    InvalidHeaderName {
        /// The rejected name.
        name: String,
    },
    /// A header value given as text holds a control character.
    #[error("value {value:?} of header {name} is not a valid field value")]
    InvalidHeaderValue {
        /// The field the value was meant for.
        name: String,
        /// The rejected value.
        value: String,
    },
    /// The request breaks an invariant of [`rgi::Environ`] (a script name
    /// that does not prefix the path, a `Content-Length` header that
    /// disagrees with the body, a `Transfer-Encoding` header, ...).
    #[error("the request cannot become an environ: {0}")]
    Environ(#[from] EnvironError),
    /// A server answers this request with 400 without calling the
    /// application (an HTTP/1.1 request with a missing, repeated or
    /// invalid `host` field, RGI-HDR-5). The clients report it as a `400`
    /// response with [`Ending::Rejected`](super::Ending::Rejected);
    /// [`TestRequest::into_environ`](super::TestRequest::into_environ)
    /// returns it.
    #[error("a server rejects this request with 400: {reason}")]
    Rejected {
        /// Why, naming the offending value.
        reason: String,
    },
    /// The client could not start one of its threads.
    #[error("could not start the test client's {role} thread: {source}")]
    Thread {
        /// What the thread was for.
        role: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The readiness poller could not be created.
    #[error("could not create the readiness poller: {0}")]
    Readiness(#[source] io::Error),
    /// The driver produced no response head at all, which the kit's
    /// drivers never do; reported rather than assumed.
    #[error("the request ended without any response head ({ending})")]
    NoHead {
        /// How the driver said the request ended.
        ending: String,
    },
}
