//! The response body: a sequence of byte chunks the server pulls, closed by
//! `Drop` (spec/rgi.md, "The body").

use std::fmt;

use bytes::Bytes;

use crate::box_error::BoxError;
use crate::file::FileBody;
use crate::head::ResponseHead;
use crate::response::StartResponse;
use crate::response_error::StartError;

/// The body of a response, pulled chunk by chunk by the server.
///
/// The server asks for the next chunk only after the previous one was handed
/// to the transport, so a body that produces data lazily gets backpressure
/// for free. Each call receives the request's [`StartResponse`], so the body
/// may start the response inside its first chunk.
///
/// **Close is `Drop`.** The server drops the body exactly once, on every
/// path (end, error, panic, client disconnect, shutdown), before it reads the
/// next request on the connection: put clean-up in `Drop`.
///
/// # Examples
///
/// A body that starts the response lazily, when its first chunk is known:
///
/// ```
/// use rgi::{Body, BoxError, ResponseHead, StartResponse};
/// use bytes::Bytes;
/// use http::StatusCode;
///
/// struct Countdown(u32);
///
/// impl Body for Countdown {
///     fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
///         if !start.is_started() {
///             if let Err(err) = start.start(ResponseHead::new(StatusCode::OK)) {
///                 return Some(Err(err.into()));
///             }
///         }
///         let n = self.0.checked_sub(1)?;
///         self.0 = n;
///         Some(Ok(Bytes::from(format!("{n}\n"))))
///     }
/// }
/// ```
pub trait Body: Send {
    /// The next chunk, `None` at the end, or the error that ends the body.
    ///
    /// An empty chunk is allowed: it sends nothing and lets the server do
    /// other work (`[RGI-BODY-7]`). After `None` or an error the server does
    /// not call this again.
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>>;

    /// The exact number of bytes still to come, when known. A server may use
    /// it as Content-Length, so it must be accurate (`[RGI-BODY-10]`).
    fn size_hint(&self) -> Option<u64> {
        None
    }

    /// The file behind this body, if it is one, so that a server may send it
    /// with `sendfile` (`[RGI-FILE-3]`).
    fn file(&mut self) -> Option<&mut FileBody> {
        None
    }
}

impl<B: Body + ?Sized> Body for Box<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        (**self).next_chunk(start)
    }

    fn size_hint(&self) -> Option<u64> {
        (**self).size_hint()
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        (**self).file()
    }
}

/// Values that are a whole body in memory: one chunk, then the end.
macro_rules! single_chunk_body {
    ($($body:ty),* $(,)?) => {$(
        impl Body for $body {
            fn next_chunk(&mut self, _: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
                (!self.is_empty()).then(|| Ok(Bytes::from(std::mem::take(self))))
            }

            fn size_hint(&self) -> Option<u64> {
                Some(self.len() as u64)
            }
        }
    )*};
}

single_chunk_body!(Bytes, Vec<u8>, String);

/// A body with no chunks.
///
/// # Examples
///
/// ```
/// use rgi::{Body, Empty};
/// assert_eq!(Empty.size_hint(), Some(0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Empty;

impl Body for Empty {
    fn next_chunk(&mut self, _: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        None
    }

    fn size_hint(&self) -> Option<u64> {
        Some(0)
    }
}

/// A body whose chunks come from an iterator; see [`from_iter`].
#[derive(Clone)]
pub struct Iter<I> {
    chunks: I,
}

/// A body that yields each item of `chunks` as one chunk.
///
/// # Examples
///
/// ```
/// let body = rgi::from_iter(["first ", "second"]);
/// # let _ = body;
/// ```
pub fn from_iter<I>(chunks: I) -> Iter<I::IntoIter>
where
    I: IntoIterator,
    I::Item: Into<Bytes>,
    I::IntoIter: Send,
{
    Iter {
        chunks: chunks.into_iter(),
    }
}

impl<I> Body for Iter<I>
where
    I: Iterator + Send,
    I::Item: Into<Bytes>,
{
    fn next_chunk(&mut self, _: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.chunks.next().map(|chunk| Ok(chunk.into()))
    }
}

impl<I> fmt::Debug for Iter<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

/// A file body is read like any body by servers that cannot send it by
/// other means; `file()` lets the others find it (`[RGI-FILE-2]`).
impl Body for FileBody {
    fn next_chunk(&mut self, _: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.read_next().map_err(BoxError::from).transpose()
    }

    fn size_hint(&self) -> Option<u64> {
        self.remaining()
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        Some(self)
    }
}

impl StartResponse<'_> {
    /// Starts the response from an [`http::Response`] whose body is an RGI
    /// body: its status and header fields become the head, and the body is
    /// returned for the application to return from `call`. The version and
    /// extensions of the response are not part of an RGI head and are
    /// dropped.
    ///
    /// # Errors
    ///
    /// As [`StartResponse::start`]; the body is dropped then.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Response, StatusCode, header};
    ///
    /// let app = rgi::from_fn(|_environ, start| {
    ///     let response = Response::builder()
    ///         .status(StatusCode::CREATED)
    ///         .header(header::CONTENT_TYPE, "text/plain")
    ///         .body(Bytes::from_static(b"made it"))?;
    ///     Ok(start.respond(response)?)
    /// });
    /// # let _ = app;
    /// ```
    pub fn respond<B: Body>(&mut self, response: http::Response<B>) -> Result<B, StartError> {
        let (parts, body) = response.into_parts();
        self.start(ResponseHead::from_parts(parts.status, parts.headers))?;
        Ok(body)
    }
}
