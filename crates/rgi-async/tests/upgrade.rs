//! Upgrade: the once-only accept, the header fields the server keeps for
//! itself, and talking over the upgraded stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use rgi::Environ;
use rgi_async::{
    ByteStream, Capabilities, Offload, Upgrade, UpgradeError, UpgradeFuture, UpgradeService,
};
use support::{ThreadPerJob, block_on};

/// An echoing connection: what is written can be read back; closed writes
/// read as end of stream.
#[derive(Default)]
struct Echo {
    buffer: VecDeque<u8>,
    closed: bool,
    flushes: usize,
}

impl ByteStream for Echo {
    fn poll_read(&mut self, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if self.buffer.is_empty() && !self.closed {
            return Poll::Pending;
        }
        let n = buf.len().min(self.buffer.len());
        for (slot, byte) in buf.iter_mut().zip(self.buffer.drain(..n)) {
            *slot = byte;
        }
        Poll::Ready(Ok(n))
    }

    fn poll_write(&mut self, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.closed {
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe)));
        }
        self.buffer.extend(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.flushes += 1;
        Poll::Ready(Ok(()))
    }

    fn poll_close(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.closed = true;
        Poll::Ready(Ok(()))
    }
}

/// Records the 101's header fields and hands over an echoing connection;
/// refuses if `started` (the application already started a response).
#[derive(Default, Clone)]
struct Server {
    registered: Arc<Mutex<Vec<HeaderMap>>>,
    started: bool,
}

impl UpgradeService for Server {
    fn accept(&self, headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError> {
        if self.started {
            return Err(UpgradeError::ResponseStarted);
        }
        self.registered.lock().unwrap().push(headers);
        Ok(Box::pin(async {
            Ok(Box::new(Echo::default()) as Box<dyn ByteStream>)
        }))
    }
}

fn accept_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static("sec-websocket-accept"),
        HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    );
    headers
}

/// Polls `f` with a no-op waker until it is ready (the echo never waits
/// once data is there).
fn ready<T>(mut f: impl FnMut(&mut Context<'_>) -> Poll<T>) -> T {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match f(&mut cx) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("unexpectedly pending"),
    }
}

#[test]
fn an_accepted_upgrade_yields_the_connection_to_talk_over() {
    let server = Server::default();
    let upgrade = Upgrade::new(server.clone());
    let mut stream = block_on(upgrade.accept(accept_headers()).unwrap()).unwrap();
    assert_eq!(*server.registered.lock().unwrap(), vec![accept_headers()]);

    assert_eq!(ready(|cx| stream.poll_write(cx, b"ping")).unwrap(), 4);
    ready(|cx| stream.poll_flush(cx)).unwrap();
    let mut buf = [0; 8];
    let n = ready(|cx| stream.poll_read(cx, &mut buf)).unwrap();
    assert_eq!(&buf[..n], b"ping");
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(stream.poll_read(&mut cx, &mut buf).is_pending());
    ready(|cx| stream.poll_close(cx)).unwrap();
    assert_eq!(ready(|cx| stream.poll_read(cx, &mut buf)).unwrap(), 0);
    let err = ready(|cx| stream.poll_write(cx, b"late")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn an_upgrade_is_accepted_once_across_clones() {
    let server = Server::default();
    let upgrade = Upgrade::new(server.clone());
    let clone = upgrade.clone();
    assert!(!clone.is_accepted());
    let _upgraded = upgrade.accept(HeaderMap::new()).unwrap();
    assert!(clone.is_accepted());
    assert!(matches!(
        clone.accept(HeaderMap::new()),
        Err(UpgradeError::AlreadyAccepted)
    ));
    assert_eq!(server.registered.lock().unwrap().len(), 1);
}

#[test]
fn header_fields_the_server_writes_are_refused_and_the_upgrade_stays_available() {
    let server = Server::default();
    let upgrade = Upgrade::new(server.clone());
    for name in [
        header::CONNECTION,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
    ] {
        let mut headers = accept_headers();
        headers.insert(name.clone(), HeaderValue::from_static("x"));
        let Err(err) = upgrade.accept(headers) else {
            panic!("{name} was accepted");
        };
        assert_eq!(
            err.to_string(),
            format!("header field {name} is not allowed from the application in a 101 response")
        );
        assert!(
            matches!(err, UpgradeError::HeaderNotAllowed { name: ref refused } if *refused == name)
        );
    }
    assert!(!upgrade.is_accepted());
    assert!(server.registered.lock().unwrap().is_empty());
    assert!(upgrade.accept(accept_headers()).is_ok());
}

#[test]
fn the_application_may_name_one_protocol_but_not_several() {
    let server = Server::default();
    let upgrade = Upgrade::new(server.clone());
    for several in [&["websocket, h2c"][..], &["websocket", "h2c"][..]] {
        let mut headers = accept_headers();
        for value in several {
            headers.append(header::UPGRADE, HeaderValue::from_static(value));
        }
        let Err(err) = upgrade.accept(headers) else {
            panic!("{several:?} was accepted");
        };
        assert!(
            matches!(err, UpgradeError::SeveralProtocols { .. }),
            "{err}"
        );
    }
    assert!(!upgrade.is_accepted());
    let mut headers = accept_headers();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    assert!(upgrade.accept(headers).is_ok());
    assert_eq!(server.registered.lock().unwrap().len(), 1);
}

#[test]
fn a_server_refusal_is_passed_through_and_does_not_use_up_the_upgrade() {
    let upgrade = Upgrade::new(Server {
        started: true,
        ..Server::default()
    });
    assert!(matches!(
        upgrade.accept(accept_headers()),
        Err(UpgradeError::ResponseStarted)
    ));
    assert!(!upgrade.is_accepted());
}

#[test]
fn a_connection_lost_before_the_101_resolves_to_its_error() {
    struct Vanished;
    impl UpgradeService for Vanished {
        fn accept(&self, _headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError> {
            Ok(Box::pin(async {
                Err(UpgradeError::from(io::Error::from(
                    io::ErrorKind::ConnectionReset,
                )))
            }))
        }
    }
    let upgraded = Upgrade::new(Vanished).accept(HeaderMap::new()).unwrap();
    assert_eq!(format!("{upgraded:?}"), "Upgraded { .. }");
    let Err(UpgradeError::Io(err)) = block_on(upgraded) else {
        panic!("expected the transport error");
    };
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}

#[test]
fn a_boxed_stream_forwards_every_operation() {
    let mut boxed: Box<Box<dyn ByteStream>> = Box::new(Box::new(Echo::default()));
    assert_eq!(ready(|cx| boxed.poll_write(cx, b"ab")).unwrap(), 2);
    ready(|cx| boxed.poll_flush(cx)).unwrap();
    let mut buf = [0; 2];
    assert_eq!(ready(|cx| boxed.poll_read(cx, &mut buf)).unwrap(), 2);
    ready(|cx| boxed.poll_close(cx)).unwrap();
    assert_eq!(ready(|cx| boxed.poll_read(cx, &mut buf)).unwrap(), 0);
}

#[test]
fn the_upgrade_is_found_through_capabilities_only_when_offered() {
    let without = Capabilities::builder(Offload::new(ThreadPerJob)).build();
    assert!(without.upgrade().is_none());
    let environ = Environ::builder()
        .extension(
            Capabilities::builder(Offload::new(ThreadPerJob))
                .upgrade(Upgrade::new(Server::default()))
                .build(),
        )
        .build()
        .unwrap();
    let upgrade = Capabilities::of(&environ).unwrap().upgrade().unwrap();
    assert_eq!(format!("{upgrade:?}"), "Upgrade { accepted: false, .. }");
    assert!(block_on(upgrade.accept(accept_headers()).unwrap()).is_ok());
}

/// A server that picks the 101's protocol as RGIA-UPGRADE-3 says, with the
/// kit's `choose_protocol`, and records what it would write.
struct Offering {
    offered: Vec<String>,
    switched_to: Arc<Mutex<Vec<(String, HeaderMap)>>>,
}

impl UpgradeService for Offering {
    fn accept(&self, mut headers: HeaderMap) -> Result<UpgradeFuture, UpgradeError> {
        let protocol = rgi_conformance::rt::choose_protocol(&self.offered, &mut headers)?;
        self.switched_to.lock().unwrap().push((protocol, headers));
        Ok(Box::pin(async {
            Ok(Box::new(Echo::default()) as Box<dyn ByteStream>)
        }))
    }
}

#[test]
fn d6_connection_specific_fields_are_refused_like_in_any_response_head() {
    let server = Server::default();
    let upgrade = Upgrade::new(server.clone());
    for name in ["keep-alive", "te", "trailer", "proxy-connection"] {
        let mut headers = accept_headers();
        headers.insert(name, HeaderValue::from_static("x"));
        let Err(err) = upgrade.accept(headers) else {
            panic!("{name} was accepted");
        };
        assert!(
            matches!(err, UpgradeError::HeaderNotAllowed { name: ref refused } if refused == name),
            "{err}"
        );
    }
    assert!(!upgrade.is_accepted());
    assert!(server.registered.lock().unwrap().is_empty());
}

#[test]
fn d6_the_101_names_the_one_offered_protocol_the_application_chose() {
    let switched_to = Arc::new(Mutex::new(Vec::new()));
    let upgrade = Upgrade::new(Offering {
        offered: vec!["h2c".to_owned(), "websocket".to_owned()],
        switched_to: Arc::clone(&switched_to),
    });
    // Two offers and no choice: RFC 9110 §7.8 lets the server switch only
    // to a protocol the client offered, and a 101 names the one it switched
    // to, so there is nothing to default to.
    let Err(err) = upgrade.accept(accept_headers()) else {
        panic!("accepted without a chosen protocol");
    };
    assert!(
        matches!(err, UpgradeError::ProtocolNotChosen { .. }),
        "{err}"
    );
    let mut headers = accept_headers();
    headers.insert(header::UPGRADE, HeaderValue::from_static("x-other"));
    let Err(err) = upgrade.accept(headers) else {
        panic!("accepted a protocol the request did not offer");
    };
    assert!(
        matches!(err, UpgradeError::ProtocolNotOffered { .. }),
        "{err}"
    );
    assert!(
        !upgrade.is_accepted(),
        "refusals leave the upgrade available"
    );
    let mut headers = accept_headers();
    headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
    assert!(upgrade.accept(headers).is_ok());
    let switched = switched_to.lock().unwrap();
    let [(protocol, fields)] = switched.as_slice() else {
        panic!("{} switches", switched.len());
    };
    assert_eq!(protocol, "websocket");
    assert_eq!(
        fields,
        &accept_headers(),
        "the application's other fields pass unchanged"
    );
}

#[test]
fn d6_a_single_offer_is_the_default_choice() {
    let switched_to = Arc::new(Mutex::new(Vec::new()));
    let upgrade = Upgrade::new(Offering {
        offered: vec!["websocket".to_owned()],
        switched_to: Arc::clone(&switched_to),
    });
    assert!(upgrade.accept(accept_headers()).is_ok());
    assert_eq!(switched_to.lock().unwrap()[0].0, "websocket");
}
