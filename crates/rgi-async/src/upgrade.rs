//! Handing the connection over to another protocol (spec/rgi-async.md,
//! "Upgrade").

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use http::HeaderMap;
use http::header::{self, HeaderName};

/// A bidirectional byte stream: the connection after a `101 Switching
/// Protocols` response.
///
/// The methods follow the usual poll conventions: `Pending` registers the
/// context's waker; a read of 0 bytes into a non-empty buffer means the
/// peer closed its side.
pub trait ByteStream: Send {
    /// Reads into `buf`, returning how many bytes were read.
    ///
    /// # Errors
    ///
    /// Transport failures.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// Writes from `buf`, returning how many bytes were accepted.
    ///
    /// # Errors
    ///
    /// Transport failures.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;

    /// Flushes buffered writes to the transport.
    ///
    /// # Errors
    ///
    /// Transport failures.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// Flushes and closes the write side.
    ///
    /// # Errors
    ///
    /// Transport failures.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl<S: ByteStream + ?Sized> ByteStream for Box<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        (**self).poll_read(cx, buf)
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        (**self).poll_write(cx, buf)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_flush(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_close(cx)
    }
}

/// Why an upgrade failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The upgrade of this request was already accepted.
    #[error("the upgrade was already accepted")]
    AlreadyAccepted,
    /// The application supplied a header field that a 101 response cannot
    /// carry from it: a connection-specific field the server writes itself
    /// (`connection`, `keep-alive`, `transfer-encoding`, ...) or a
    /// `content-length`, which no 1xx response carries (RFC 9110 §8.6).
    #[error("header field {name} is not allowed from the application in a 101 response")]
    HeaderNotAllowed {
        /// The offending field name.
        name: HeaderName,
    },
    /// Another field of the 101 breaks the rules for response header
    /// fields of spec/rgi.md (`[RGIA-UPGRADE-2]`).
    #[error("invalid field for the 101 response: {0}")]
    InvalidField(#[source] rgi::HeadError),
    /// The application's `upgrade` field names more than one protocol
    /// (repeated, or a comma-separated list); a 101 switches to exactly one
    /// (`[RGIA-UPGRADE-3]`).
    #[error("the upgrade field must name one protocol, not {value:?}")]
    SeveralProtocols {
        /// The offending value (the second field, or the list).
        value: http::HeaderValue,
    },
    /// The protocol the application chose is not among those the request
    /// offered (server side check, `[RGIA-UPGRADE-3]`).
    #[error("protocol {chosen:?} was not offered by the request ({offered:?})")]
    ProtocolNotOffered {
        /// What the application chose.
        chosen: http::HeaderValue,
        /// What the request's `upgrade` field offered.
        offered: http::HeaderValue,
    },
    /// The request offered several protocols and the application chose
    /// none (server side check, `[RGIA-UPGRADE-3]`).
    #[error("the request offered several protocols ({offered:?}); the application must choose one")]
    ProtocolNotChosen {
        /// What the request's `upgrade` field offered.
        offered: http::HeaderValue,
    },
    /// The response head was already sent, so it cannot become a 101
    /// (server side check; a head only stored is replaced by the 101).
    #[error("the response head was already sent; it cannot become a 101")]
    ResponseStarted,
    /// The connection closed, or the server shut down, before the 101 was on
    /// the wire.
    #[error("the connection closed before the upgrade completed")]
    Closed,
    /// The transport failed while writing the 101.
    #[error("upgrade failed: {0}")]
    Io(#[from] io::Error),
}

/// Body framing, which no 1xx response carries; the connection-specific
/// fields are refused by the rules for response heads.
/// Fields about a body, which a 101 does not have; `Trailer` announces
/// trailer fields, which only a body can carry.
const FRAMING_FIELDS: [HeaderName; 3] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::TRAILER,
];

/// The future the server hands back for an accepted upgrade.
pub type UpgradeFuture =
    Pin<Box<dyn Future<Output = Result<Box<dyn ByteStream>, UpgradeError>> + Send>>;

/// The server's side of [`Upgrade`], one per upgradable request.
pub trait UpgradeService: Send + Sync {
    /// Registers a `101 Switching Protocols` response carrying `headers`
    /// and returns a future that resolves to the connection once the 101 is
    /// on the wire. [`Upgrade::accept`] has already checked the fields
    /// (valid, none the server writes, at most one `upgrade` naming one
    /// protocol) and that this is the request's only accepted upgrade.
    ///
    /// The server writes `connection: upgrade` and the `upgrade` field
    /// (`[RGIA-UPGRADE-3]`): the protocol `headers` names, which has to be
    /// among those the request offered, or else the request's offer when
    /// it names exactly one protocol. It never copies a list of offers
    /// into the 101 (RFC 9110 §7.8: the 101 names the protocol switched
    /// to, and only one the client offered).
    ///
    /// # Errors
    ///
    /// [`UpgradeError::ResponseStarted`] if the response head was already
    /// sent; [`UpgradeError::ProtocolNotOffered`] for a chosen protocol the
    /// request did not offer; [`UpgradeError::ProtocolNotChosen`] when the
    /// request offered several and `headers` names none. The future
    /// resolves to [`UpgradeError::Closed`] or [`UpgradeError::Io`] if the
    /// 101 cannot be written.
    fn accept(&self, headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError>;
}

/// The per-request capability to switch the connection to another protocol
/// (the WebSocket protocol, for example).
///
/// Present in [`Capabilities`](crate::Capabilities) only if the request
/// asked for an upgrade and the server can hand the connection over
/// (HTTP/1.1); without it, answer 426 or 501. After accepting, the
/// application's body awaits the [`Upgraded`] future and talks over the
/// stream; the connection closes when the body ends and the stream is
/// dropped.
#[derive(Clone)]
pub struct Upgrade {
    service: Arc<dyn UpgradeService>,
    accepted: Arc<AtomicBool>,
}

impl Upgrade {
    /// The capability over `service` (server side).
    pub fn new(service: impl UpgradeService + 'static) -> Self {
        Upgrade {
            service: Arc::new(service),
            accepted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Accepts the upgrade: registers the 101 response with `headers` added
    /// (for example `sec-websocket-accept`). `headers` may carry one
    /// `upgrade` field naming the one protocol chosen among those the
    /// request offered, and must when the request offered several; without
    /// it the server uses the request's offer when that names a single
    /// protocol (`[RGIA-UPGRADE-3]`, RFC 9110 §7.8). The server writes
    /// `connection: upgrade` itself.
    ///
    /// # Errors
    ///
    /// [`UpgradeError::HeaderNotAllowed`] for a connection-specific field
    /// (`connection`, `keep-alive`, `te`, ...) or body framing
    /// (`content-length`, `transfer-encoding`);
    /// [`UpgradeError::InvalidField`] for another field the rules for
    /// response heads refuse; [`UpgradeError::SeveralProtocols`] for an
    /// `upgrade` field naming more than one protocol (a 101 that switches
    /// several layers at once is outside RGI);
    /// [`UpgradeError::AlreadyAccepted`] on a second call (from any clone of
    /// this handle); whatever the server reports (see
    /// [`UpgradeService::accept`]). A refused call leaves the upgrade
    /// available, except after [`UpgradeError::AlreadyAccepted`].
    ///
    /// # Examples
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue};
    /// use rgi_async::{Upgrade, UpgradeError, UpgradeFuture, UpgradeService};
    ///
    /// /// A server whose client vanished before the 101 went out.
    /// struct Vanished;
    ///
    /// impl UpgradeService for Vanished {
    ///     fn accept(&self, _headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError> {
    ///         Ok(Box::pin(async { Err(UpgradeError::Closed) }))
    ///     }
    /// }
    ///
    /// let upgrade = Upgrade::new(Vanished);
    /// let mut headers = HeaderMap::new();
    /// headers.insert(
    ///     "sec-websocket-accept",
    ///     HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    /// );
    /// let upgraded = upgrade.accept(headers)?; // the body awaits this
    /// assert!(upgrade.is_accepted());
    /// assert!(matches!(upgrade.accept(HeaderMap::new()), Err(UpgradeError::AlreadyAccepted)));
    /// # drop(upgraded);
    /// # Ok::<(), UpgradeError>(())
    /// ```
    pub fn accept(&self, headers: HeaderMap) -> Result<Upgraded, UpgradeError> {
        check_fields(&headers)?;
        let mut protocols = headers.get_all(header::UPGRADE).iter();
        if let Some(first) = protocols.next() {
            let several = protocols
                .next()
                .or_else(|| first.as_bytes().contains(&b',').then_some(first));
            if let Some(value) = several {
                return Err(UpgradeError::SeveralProtocols {
                    value: value.clone(),
                });
            }
        }
        if self.accepted.swap(true, Ordering::SeqCst) {
            return Err(UpgradeError::AlreadyAccepted);
        }
        match self.service.accept(headers) {
            Ok(future) => Ok(Upgraded { future }),
            Err(err) => {
                self.accepted.store(false, Ordering::SeqCst);
                Err(err)
            }
        }
    }

    /// Whether the upgrade was accepted.
    #[must_use]
    pub fn is_accepted(&self) -> bool {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// The rules for response header fields of spec/rgi.md, applied to the
/// fields of a 101 (`[RGIA-UPGRADE-2]`): all but the `upgrade` field, which
/// a 101 alone may carry.
fn check_fields(headers: &HeaderMap) -> Result<(), UpgradeError> {
    if let Some(name) = FRAMING_FIELDS
        .iter()
        .find(|name| headers.contains_key(*name))
    {
        return Err(UpgradeError::HeaderNotAllowed { name: name.clone() });
    }
    let mut others = headers.clone();
    others.remove(header::UPGRADE);
    // The rules are those of a final response's head; 200 stands in for
    // 101, which `validate` refuses as informational.
    match rgi::ResponseHead::from_parts(http::StatusCode::OK, others).validate() {
        Ok(_) => Ok(()),
        Err(rgi::HeadError::HopByHop { name }) => Err(UpgradeError::HeaderNotAllowed { name }),
        Err(err) => Err(UpgradeError::InvalidField(err)),
    }
}

impl fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgrade")
            .field("accepted", &self.is_accepted())
            .finish_non_exhaustive()
    }
}

/// The connection after an accepted upgrade: resolves once the 101 is on
/// the wire.
///
/// # Cancel safety
///
/// Dropping it before it resolves gives the connection up: the server
/// closes it.
#[must_use = "the connection is closed if this is dropped"]
pub struct Upgraded {
    future: UpgradeFuture,
}

impl Future for Upgraded {
    type Output = Result<Box<dyn ByteStream>, UpgradeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.future.as_mut().poll(cx)
    }
}

impl fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgraded").finish_non_exhaustive()
    }
}
