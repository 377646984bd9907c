//! Connection upgrade over hyper (spec/rgi-async.md §12, RGIA-UPGRADE;
//! spec/rgi.md RGI-H2-10 and RGI-H2-11 for HTTP/2's extended CONNECT).
//!
//! hyper hands a connection over through the `OnUpgrade` it puts in the
//! extensions of a request that asks for it, once the service answered
//! `101 Switching Protocols` (HTTP/1.1, on a connection served
//! `with_upgrades()`) or `200` to an extended CONNECT (HTTP/2, with
//! `enable_connect_protocol()`). An [`UpgradeOffer`] takes that `OnUpgrade`
//! from the request, lends the application its [`Upgrade`] capability, and
//! tells the host which head to send instead of the application's once the
//! application accepted.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::rt::{Read as _, ReadBuf, Write as _};
use hyper::upgrade::OnUpgrade;
use rgi_async::{ByteStream, Upgrade, UpgradeError, UpgradeFuture, UpgradeService};

/// The upgrade a request offers, and hyper's hand-over of its connection:
/// built by the host for each request that can be upgraded.
///
/// The host's part, in order:
///
/// 1. [`UpgradeOffer::detect`] on the request before it becomes an
///    environ; `Some` only where an upgrade can happen (`[RGIA-UPGRADE-1]`);
/// 2. the request's capabilities get [`UpgradeOffer::upgrade`];
/// 3. after the application's `call` and after every `poll_step`,
///    [`UpgradeOffer::take_switch`]: `Some(head)` means the application
///    accepted, so that head goes out (with an empty body) and the host
///    keeps polling the application's body, which now talks over the
///    connection (`[RGIA-UPGRADE-4]`, `[RGIA-UPGRADE-7]`);
/// 4. just before the application's own head would be sent,
///    [`UpgradeOffer::seal`]: from then on `accept` answers
///    [`UpgradeError::ResponseStarted`]; if it returns a head, the
///    application accepted first and that head goes out instead.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, HeaderValue, Request, StatusCode};
/// use rgi_tower::caps::UpgradeOffer;
///
/// // A request as hyper's HTTP/1.1 server hands it over, `OnUpgrade` included.
/// let mut request = Request::builder()
///     .header("connection", "Upgrade")
///     .header("upgrade", "websocket")
///     .body(())?;
/// # request.extensions_mut().insert(hyper_on_upgrade_stand_in());
/// # fn hyper_on_upgrade_stand_in() -> hyper::upgrade::OnUpgrade {
/// #     let mut request = Request::new(());
/// #     hyper::upgrade::on(&mut request)
/// # }
/// let offer = UpgradeOffer::detect(&mut request).ok_or("not upgradable")?;
///
/// // The application accepts through its capability...
/// let mut fields = HeaderMap::new();
/// fields.insert("sec-websocket-accept", HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
/// let connection = offer.upgrade().accept(fields)?;
///
/// // ...and the host sends this head in place of the application's.
/// let head = offer.take_switch().ok_or("accepted")?;
/// assert_eq!(head.status(), StatusCode::SWITCHING_PROTOCOLS);
/// assert_eq!(head.headers()["upgrade"], "websocket");
/// assert_eq!(head.headers()["connection"], "upgrade");
/// # drop(connection);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct UpgradeOffer {
    shared: Arc<Offer>,
    upgrade: Upgrade,
}

/// What the offer and the application's capability share.
struct Offer {
    kind: Kind,
    state: Mutex<State>,
}

/// How the request asks for the upgrade.
enum Kind {
    /// HTTP/1.1 `Upgrade` with `Connection: upgrade`: the offered
    /// protocols, as the request listed them.
    Http1 { offered: HeaderValue },
    /// HTTP/2 extended CONNECT (RFC 8441): the `:protocol`.
    ExtendedConnect { protocol: String },
}

/// Where the offer stands.
enum State {
    /// Neither accepted nor sealed: hyper's hand-over is still ours.
    Open(OnUpgrade),
    /// Accepted: the head to send, until the host takes it.
    Accepted(Option<Response<()>>),
    /// The application's own head was sent, or the switch head taken.
    Closed { accepted: bool },
}

impl UpgradeOffer {
    /// The offer of `request`, taking hyper's `OnUpgrade` from its
    /// extensions; `None` (and the request untouched) unless the request
    /// can be upgraded (`[RGIA-UPGRADE-1]`, RGI-H2-10):
    ///
    /// - an HTTP/1.1 request with an `upgrade` field and a `connection`
    ///   field listing `upgrade`;
    /// - an HTTP/2 CONNECT carrying a `:protocol` (hyper's
    ///   `hyper::ext::Protocol`), that is an extended CONNECT;
    ///
    /// and in both cases an `OnUpgrade` from hyper. hyper completes the
    /// hand-over only on an HTTP/1.1 connection served `with_upgrades()`
    /// and an HTTP/2 connection with `enable_connect_protocol()`; the host
    /// detects offers only on connections it serves so.
    ///
    /// For an extended CONNECT it also records the `:protocol` as the
    /// request's [`rgi::ConnectProtocol`] extension, without which the
    /// request cannot become an environ (RGI-H2-11).
    pub fn detect<B>(request: &mut Request<B>) -> Option<UpgradeOffer> {
        let kind = kind_of(request)?;
        let on_upgrade = request.extensions_mut().remove::<OnUpgrade>()?;
        if let Kind::ExtendedConnect { protocol } = &kind {
            if request.extensions().get::<rgi::ConnectProtocol>().is_none() {
                request
                    .extensions_mut()
                    .insert(rgi::ConnectProtocol::new(protocol.clone()));
            }
        }
        let shared = Arc::new(Offer {
            kind,
            state: Mutex::new(State::Open(on_upgrade)),
        });
        let upgrade = Upgrade::new(Service(Arc::clone(&shared)));
        Some(UpgradeOffer { shared, upgrade })
    }

    /// The application's capability, for the request's `Capabilities`.
    #[must_use]
    pub fn upgrade(&self) -> &Upgrade {
        &self.upgrade
    }

    /// Whether the request is an HTTP/2 extended CONNECT (answered `200`)
    /// rather than an HTTP/1.1 upgrade (answered `101`).
    #[must_use]
    pub fn is_extended_connect(&self) -> bool {
        matches!(self.shared.kind, Kind::ExtendedConnect { .. })
    }

    /// The head to send now if the application accepted the upgrade since
    /// the last look: `101` with `connection: upgrade` and the chosen
    /// protocol, or `200` for an extended CONNECT. Returns it once.
    #[must_use]
    pub fn take_switch(&self) -> Option<Response<()>> {
        let mut state = self.shared.lock();
        match &mut *state {
            State::Accepted(head) => {
                let head = head.take();
                *state = State::Closed { accepted: true };
                head
            }
            _ => None,
        }
    }

    /// The application's own head is about to be sent: closes the offer,
    /// so that a later `accept` answers [`UpgradeError::ResponseStarted`].
    /// Returns the switch head instead if the application accepted first;
    /// the host then sends that one and drops the application's.
    #[must_use]
    pub fn seal(&self) -> Option<Response<()>> {
        let mut state = self.shared.lock();
        match std::mem::replace(&mut *state, State::Closed { accepted: false }) {
            State::Accepted(head) => {
                *state = State::Closed { accepted: true };
                head
            }
            State::Closed { accepted } => {
                *state = State::Closed { accepted };
                None
            }
            // hyper's hand-over is dropped: it resolves to an error, which
            // nobody awaits.
            State::Open(_) => None,
        }
    }

    /// Whether the application accepted the upgrade.
    #[must_use]
    pub fn is_accepted(&self) -> bool {
        matches!(
            &*self.shared.lock(),
            State::Accepted(_) | State::Closed { accepted: true }
        )
    }
}

impl fmt::Debug for UpgradeOffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offered = match &self.shared.kind {
            Kind::Http1 { offered } => offered.to_str().unwrap_or("(not text)"),
            Kind::ExtendedConnect { protocol } => protocol,
        };
        f.debug_struct("UpgradeOffer")
            .field("offered", &offered)
            .field("extended_connect", &self.is_extended_connect())
            .field("accepted", &self.is_accepted())
            .finish()
    }
}

impl Offer {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code under this lock can panic half-way through a change.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How `request` asks for an upgrade, if it does.
fn kind_of<B>(request: &Request<B>) -> Option<Kind> {
    match request.version() {
        Version::HTTP_11 => {
            let headers = request.headers();
            let connection_upgrade = headers
                .get_all(header::CONNECTION)
                .iter()
                .flat_map(tokens)
                .any(|token| token.eq_ignore_ascii_case("upgrade"));
            let mut offers = headers.get_all(header::UPGRADE).iter();
            let offered = offers.next()?.clone();
            // Several `upgrade` field lines are one list (RFC 9110 §5.3).
            let offered = match offers.next() {
                None => offered,
                Some(_) => joined(headers.get_all(header::UPGRADE).iter())?,
            };
            (connection_upgrade && tokens(&offered).next().is_some())
                .then_some(Kind::Http1 { offered })
        }
        Version::HTTP_2 if request.method() == Method::CONNECT => request
            .extensions()
            .get::<hyper::ext::Protocol>()
            .map(|protocol| Kind::ExtendedConnect {
                protocol: protocol.as_str().to_owned(),
            }),
        _ => None,
    }
}

/// The comma-separated, trimmed, non-empty elements of a list field.
fn tokens(value: &HeaderValue) -> impl Iterator<Item = &str> {
    value
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Several field lines as one comma-separated value.
fn joined<'v>(values: impl Iterator<Item = &'v HeaderValue>) -> Option<HeaderValue> {
    let mut all = Vec::new();
    for value in values {
        if !all.is_empty() {
            all.extend_from_slice(b", ");
        }
        all.extend_from_slice(value.as_bytes());
    }
    HeaderValue::from_bytes(&all).ok()
}

/// The application's side of the offer.
struct Service(Arc<Offer>);

impl UpgradeService for Service {
    fn accept(&self, mut headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError> {
        let mut state = self.0.lock();
        match &*state {
            State::Open(_) => {}
            State::Accepted(_) | State::Closed { accepted: true } => {
                return Err(UpgradeError::AlreadyAccepted);
            }
            State::Closed { accepted: false } => return Err(UpgradeError::ResponseStarted),
        }
        let chosen = headers.remove(header::UPGRADE);
        let status = match &self.0.kind {
            Kind::Http1 { offered } => {
                let protocol = choose(chosen, offered)?;
                headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                headers.insert(header::UPGRADE, protocol);
                StatusCode::SWITCHING_PROTOCOLS
            }
            Kind::ExtendedConnect { protocol } => {
                // RGI-H2-11: the `:protocol` is the one offer; a 200 carries
                // no `upgrade` field.
                let matches = |chosen: &HeaderValue| {
                    chosen
                        .to_str()
                        .is_ok_and(|chosen| chosen.trim().eq_ignore_ascii_case(protocol))
                };
                match chosen {
                    Some(chosen) if !matches(&chosen) => {
                        return Err(UpgradeError::ProtocolNotOffered {
                            chosen,
                            offered: HeaderValue::from_str(protocol)
                                .unwrap_or_else(|_| HeaderValue::from_static("")),
                        });
                    }
                    _ => StatusCode::OK,
                }
            }
        };
        let mut head = Response::new(());
        *head.status_mut() = status;
        *head.headers_mut() = headers;
        let on_upgrade = match std::mem::replace(&mut *state, State::Accepted(Some(head))) {
            State::Open(on_upgrade) => on_upgrade,
            // Checked above under the same lock; kept total all the same.
            previous => {
                *state = previous;
                return Err(UpgradeError::AlreadyAccepted);
            }
        };
        drop(state);
        Ok(Box::pin(async move {
            match on_upgrade.await {
                Ok(upgraded) => Ok(Box::new(HyperStream::new(upgraded)) as Box<dyn ByteStream>),
                Err(err) => Err(hand_over_error(&err)),
            }
        }))
    }
}

/// The protocol the 101 names: the application's choice among the offers,
/// or the one offer (`[RGIA-UPGRADE-3]`).
fn choose(chosen: Option<HeaderValue>, offered: &HeaderValue) -> Result<HeaderValue, UpgradeError> {
    match chosen {
        Some(chosen) => {
            let name = chosen.to_str().unwrap_or("").trim();
            if tokens(offered).any(|offer| offer.eq_ignore_ascii_case(name)) {
                Ok(chosen)
            } else {
                Err(UpgradeError::ProtocolNotOffered {
                    chosen,
                    offered: offered.clone(),
                })
            }
        }
        None => {
            let mut offers = tokens(offered);
            match (offers.next(), offers.next()) {
                (Some(only), None) => {
                    HeaderValue::from_str(only).map_err(|_| UpgradeError::ProtocolNotChosen {
                        offered: offered.clone(),
                    })
                }
                _ => Err(UpgradeError::ProtocolNotChosen {
                    offered: offered.clone(),
                }),
            }
        }
    }
}

/// hyper's failure to hand the connection over, as RGI names it
/// (`[RGIA-UPGRADE-9]`): a transport error as such, anything else (the
/// connection ended, or was never handed over) as `Closed`.
fn hand_over_error(err: &hyper::Error) -> UpgradeError {
    let transport = std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<io::Error>())
        .map(io::Error::kind);
    match transport {
        Some(kind) => UpgradeError::Io(io::Error::new(kind, err.to_string())),
        None => UpgradeError::Closed,
    }
}

/// The upgraded connection as an RGI [`ByteStream`].
struct HyperStream {
    io: hyper::upgrade::Upgraded,
    /// `poll_close` flushed already and now shuts the sending side.
    flushed_for_close: bool,
}

impl HyperStream {
    fn new(io: hyper::upgrade::Upgraded) -> Self {
        HyperStream {
            io,
            flushed_for_close: false,
        }
    }
}

impl ByteStream for HyperStream {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut read = ReadBuf::new(buf);
        ready!(Pin::new(&mut self.io).poll_read(cx, read.unfilled()))?;
        Poll::Ready(Ok(read.filled().len()))
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.flushed_for_close {
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.flushed_for_close = true;
        }
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
