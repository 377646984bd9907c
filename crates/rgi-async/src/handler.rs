//! Writing an application as an `async fn` (spec/rgi-async.md, "The
//! asynchronous application"): the function sets the status and header
//! fields through a [`Responder`], then streams the body, and `?` works
//! all the way through.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use rgi::{BoxError, Environ, ResponseHead, StartResponse};

use crate::app::AsyncApplication;
use crate::body::AsyncBody;
use crate::switch::Step;

/// Why a [`Responder`] refused a change to the head.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResponderError {
    /// The head has gone out with the first chunk (or the end); its status
    /// and fields can no longer change.
    #[error("the response head was already sent; {what} can no longer change")]
    HeadSent {
        /// What the application tried to change.
        what: &'static str,
    },
    /// A header field name that is not a valid HTTP field name.
    #[error("invalid header field name {name:?}")]
    InvalidName {
        /// The offending name, as given.
        name: String,
    },
    /// A header field value that is not a valid HTTP field value.
    #[error("invalid value for header field {name}: {value:?}")]
    InvalidValue {
        /// The field the value was for.
        name: HeaderName,
        /// The offending value, as given.
        value: String,
    },
}

/// What the function and its body share: the head being built, and the
/// one chunk handed over and not yet yielded.
struct Shared {
    status: StatusCode,
    headers: HeaderMap,
    head_sent: bool,
    chunk: Option<Bytes>,
}

/// The function's handle on its response: set the status and header
/// fields, then [`send`](Responder::send) the body chunk by chunk. The head
/// goes out with the first chunk, or at the end if there is none; until
/// then the status is `200 OK`, unless set.
///
/// Cheap to clone; every clone is the same response.
#[derive(Clone)]
pub struct Responder {
    shared: Arc<Mutex<Shared>>,
}

impl Responder {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the response's status.
    ///
    /// # Errors
    ///
    /// [`ResponderError::HeadSent`] once the head has gone out.
    pub fn set_status(&self, status: StatusCode) -> Result<(), ResponderError> {
        let mut shared = self.lock();
        if shared.head_sent {
            return Err(ResponderError::HeadSent { what: "the status" });
        }
        shared.status = status;
        Ok(())
    }

    /// Appends a header field; `name` and `value` may be anything that
    /// converts (`&str`, `String`, `HeaderName`, `HeaderValue`, ...).
    ///
    /// # Errors
    ///
    /// [`ResponderError::InvalidName`] or [`ResponderError::InvalidValue`]
    /// for what does not convert, [`ResponderError::HeadSent`] once the
    /// head has gone out. The rules of spec/rgi.md for response heads
    /// (no connection-specific fields, one valid Content-Length) are
    /// checked when the head goes out, and fail the response then.
    pub fn append_header<N, V>(&self, name: N, value: V) -> Result<(), ResponderError>
    where
        N: TryInto<HeaderName> + fmt::Debug + Clone,
        V: TryInto<HeaderValue> + fmt::Debug + Clone,
    {
        // Kept for the error only: the conversion consumes the original.
        let (shown_name, shown_value) = (name.clone(), value.clone());
        let header_name: HeaderName = name.try_into().map_err(|_| ResponderError::InvalidName {
            name: format!("{shown_name:?}"),
        })?;
        let header_value: HeaderValue =
            value.try_into().map_err(|_| ResponderError::InvalidValue {
                name: header_name.clone(),
                value: format!("{shown_value:?}"),
            })?;
        let mut shared = self.lock();
        if shared.head_sent {
            return Err(ResponderError::HeadSent {
                what: "the header fields",
            });
        }
        shared.headers.append(header_name, header_value);
        Ok(())
    }

    /// Sends `chunk` as the next part of the body (the head first, if it
    /// has not gone out); resolves once the server has taken it, which is
    /// how the connection's backpressure reaches the function.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it resolves may still send the chunk:
    /// it was handed over at the first poll.
    pub fn send(&self, chunk: impl Into<Bytes>) -> SendChunk<'_> {
        SendChunk {
            responder: self,
            chunk: Some(chunk.into()),
        }
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.lock();
        f.debug_struct("Responder")
            .field("status", &shared.status)
            .field("head_sent", &shared.head_sent)
            .finish_non_exhaustive()
    }
}

/// The future of [`Responder::send`].
#[derive(Debug)]
#[must_use = "the chunk is sent only when the future is awaited"]
pub struct SendChunk<'a> {
    responder: &'a Responder,
    chunk: Option<Bytes>,
}

impl Future for SendChunk<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut shared = self.responder.lock();
        if shared.chunk.is_some() {
            // An earlier chunk (from a clone) still waits for the body.
            drop(shared);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match self.chunk.take() {
            Some(chunk) => {
                shared.chunk = Some(chunk);
                drop(shared);
                // The body yields the chunk when this poll returns and is
                // polled again at once (RGIA-POLL-2); the wake-up covers a
                // future polled by something else in between.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            None => Poll::Ready(()),
        }
    }
}

/// An asynchronous application made from an `async` function; see
/// [`from_async_fn`].
#[derive(Clone, Copy)]
pub struct AsyncFnApplication<F> {
    handler: F,
}

/// An asynchronous application that runs `handler` for each request: the
/// function gets the environ and a [`Responder`], sets the status and
/// header fields, sends the body, and returns `Ok(())` at its end. An
/// error it returns (with `?`) fails the response as an error of the body
/// would: a 500 if the head has not gone out, an abnormal end after.
///
/// The function's future is polled by the body on the server's event loop:
/// it must not block (`[RGIA-APP-3]`); its waits are readiness waits,
/// offload futures, the input's `poll_chunk`/[`InputStream`](crate::InputStream)
/// and the like.
///
/// # Examples
///
/// ```
/// use rgi::{BoxError, Environ};
/// use rgi_async::Responder;
/// use http::StatusCode;
///
/// async fn hello(environ: Environ, response: Responder) -> Result<(), BoxError> {
///     response.set_status(StatusCode::OK)?;
///     response.append_header("content-type", "text/plain")?;
///     response.send(format!("Hello, {}!\n", environ.uri().path())).await;
///     Ok(())
/// }
///
/// let app = rgi_async::from_async_fn(hello);
/// # let _ = app;
/// ```
pub fn from_async_fn<F, Fut>(handler: F) -> AsyncFnApplication<F>
where
    F: Fn(Environ, Responder) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    AsyncFnApplication { handler }
}

impl<F, Fut> AsyncApplication for AsyncFnApplication<F>
where
    F: Fn(Environ, Responder) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    type Body = AsyncFnBody<Fut>;

    fn call(
        &self,
        environ: Environ,
        _start: &mut StartResponse<'_>,
    ) -> Result<AsyncFnBody<Fut>, BoxError> {
        let responder = Responder {
            shared: Arc::new(Mutex::new(Shared {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                head_sent: false,
                chunk: None,
            })),
        };
        let future = (self.handler)(environ, responder.clone());
        Ok(AsyncFnBody {
            future: Some(Box::pin(future)),
            responder,
        })
    }
}

impl<F> fmt::Debug for AsyncFnApplication<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFnApplication")
            .field("handler", &std::any::type_name::<F>())
            .finish()
    }
}

/// The body of an [`AsyncFnApplication`]: polls the function's future and
/// yields what it sends.
pub struct AsyncFnBody<Fut> {
    // Boxed so the body is `Unpin` whatever the function's future is.
    future: Option<Pin<Box<Fut>>>,
    responder: Responder,
}

impl<Fut> AsyncFnBody<Fut> {
    /// Starts the head the function built, once.
    fn start_head(&self, start: &mut StartResponse<'_>) -> Result<(), BoxError> {
        let mut shared = self.responder.lock();
        if shared.head_sent {
            return Ok(());
        }
        shared.head_sent = true;
        let headers = std::mem::take(&mut shared.headers);
        let head = ResponseHead::from_parts(shared.status, headers);
        drop(shared);
        start.start(head)?;
        Ok(())
    }
}

impl<Fut> AsyncBody for AsyncFnBody<Fut>
where
    Fut: Future<Output = Result<(), BoxError>> + Send,
{
    fn poll_step(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Ready(None);
        };
        let finished = future.as_mut().poll(cx);
        let chunk = self.responder.lock().chunk.take();
        if let Some(chunk) = chunk {
            // A chunk handed over in this poll goes out first, even if the
            // function finished right after handing it over.
            self.start_head(start)?;
            return Poll::Ready(Some(Ok(Step::Chunk(chunk))));
        }
        match finished {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.future = None; // drops what the function held
                result?;
                self.start_head(start)?;
                Poll::Ready(None)
            }
        }
    }
}

impl<Fut> fmt::Debug for AsyncFnBody<Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFnBody")
            .field("running", &self.future.is_some())
            .field("responder", &self.responder)
            .finish()
    }
}
