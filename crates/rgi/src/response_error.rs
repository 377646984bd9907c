//! What can go wrong starting a response or sending its body: the errors
//! both the application's handle and the server's state return.

use http::StatusCode;

use crate::box_error::BoxError;
use crate::head::HeadError;

/// Starting the response failed; the stored head is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The response was started already and this call carried no error to
    /// justify a new head (`[RGI-START-8]`).
    #[error(
        "response already started with status {current}; cannot start again with {attempted} without an error"
    )]
    AlreadyStarted {
        /// The status stored by the first start.
        current: StatusCode,
        /// The status of the rejected call.
        attempted: StatusCode,
    },
    /// An error response was asked for after the head went out; the
    /// application gets its error back to propagate (`[RGI-START-11]`).
    #[error("head with status {status} already sent; cannot replace it: {cause}")]
    HeadAlreadySent {
        /// The status that was sent.
        status: StatusCode,
        /// The application's own error.
        cause: BoxError,
    },
    /// The head broke a rule (`[RGI-HEAD-*]`).
    #[error("invalid response head: {source}")]
    InvalidHead {
        /// What was wrong with it.
        #[source]
        source: HeadError,
        /// The application's error, when the invalid head was an error
        /// response given to [`StartResponse::replace`](crate::StartResponse::replace).
        cause: Option<BoxError>,
    },
}

impl StartError {
    /// The error an application should return from `call` or
    /// `next_chunk` after this failure: its own error when it was trying to
    /// report one, this error otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rgi::{BoxError, StartResponse, ResponseHead};
    /// # use http::StatusCode;
    /// fn fail(start: &mut StartResponse<'_>, cause: BoxError) -> BoxError {
    ///     match start.replace(ResponseHead::new(StatusCode::INTERNAL_SERVER_ERROR), cause) {
    ///         Ok(()) => "replaced the head with an error response".into(),
    ///         Err(err) => err.into_cause(),
    ///     }
    /// }
    /// ```
    #[must_use]
    pub fn into_cause(self) -> BoxError {
        match self {
            StartError::HeadAlreadySent { cause, .. }
            | StartError::InvalidHead {
                cause: Some(cause), ..
            } => cause,
            other => Box::new(other),
        }
    }
}

impl From<HeadError> for StartError {
    fn from(source: HeadError) -> Self {
        StartError::InvalidHead {
            source,
            cause: None,
        }
    }
}

/// Sending body bytes failed (from [`StartResponse::write`](crate::StartResponse::write) or
/// [`ResponseState::send_chunk`](crate::ResponseState::send_chunk)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Body bytes before the response was started (`[RGI-START-3]`).
    #[error("body data before the response was started")]
    NotStarted,
    /// More bytes than the declared Content-Length: the bytes up to the
    /// limit were sent, the rest dropped (`[RGI-CL-1]`).
    #[error("Content-Length is {declared} but the body reached {attempted} bytes")]
    ContentLengthExceeded {
        /// The declared length.
        declared: u64,
        /// The total the body tried to reach.
        attempted: u64,
    },
    /// Body bytes for a status that has no body (`[RGI-BODY-18]`).
    #[error("status {status} has no body, but the application sent body data")]
    BodyNotAllowed {
        /// The status of the response.
        status: StatusCode,
    },
    /// The transport failed, usually because the client went away
    /// (`[RGI-FAIL-8]`).
    #[error("transport failed: {0}")]
    Transport(#[from] std::io::Error),
}

/// A `103 Early Hints` response was refused; the response itself is
/// unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EarlyHintsError {
    /// The final head went out already; interim responses only precede it
    /// (`[RGI-EARLY-1]`).
    #[error("early hints after the final head ({status}) was sent")]
    HeadAlreadySent {
        /// The status of the head that was sent.
        status: StatusCode,
    },
    /// A field an interim response may not carry: framing or
    /// connection-specific (`[RGI-EARLY-2]`).
    #[error("field {name} is not allowed in 103 Early Hints")]
    InvalidField {
        /// The refused field.
        name: http::HeaderName,
    },
    /// The transport failed while sending them; the response is abandoned
    /// as after any transport failure.
    #[error("sending early hints failed: {0}")]
    Transport(#[source] std::io::Error),
}
