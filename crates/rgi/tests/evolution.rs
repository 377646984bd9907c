//! D7 (RGI-VER-2): every public enum of `rgi`, and every public struct with
//! public fields, is `#[non_exhaustive]`, so a later minor version can add a
//! variant or a field without breaking code outside the crate. This file is
//! such code: under `deny(warnings)` each wildcard arm below would be an
//! `unreachable_patterns` error if its enum lost `#[non_exhaustive]`, and the
//! `compile_fail` examples on `UrlScheme` and `Address` prove the converse
//! (a match without the wildcard is refused).
#![deny(warnings)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use rgi::{
    Address, Concurrency, DeclareError, EnvironError, FinishError, HeadError, InputError, InputUse,
    SendError, SpecVersion, StartError, TlsVersion, UnixAddr, UrlScheme,
};

fn scheme_name(scheme: UrlScheme) -> &'static str {
    match scheme {
        UrlScheme::Http => "http",
        UrlScheme::Https => "https",
        _ => "a scheme of a later version",
    }
}

fn address_kind(address: &Address) -> String {
    match address {
        Address::Tcp(socket) => format!("tcp {socket}"),
        Address::Unix(UnixAddr::Pathname(path)) => format!("unix {}", path.display()),
        Address::Unix(UnixAddr::Abstract(name)) => format!("abstract {}", name.len()),
        Address::Unix(UnixAddr::Unnamed) => "unnamed".to_owned(),
        Address::Unix(_) => "a Unix address of a later version".to_owned(),
        Address::Proxied { address, proxy } => {
            format!("{address} via {}", address_kind(proxy))
        }
        _ => "an address of a later version".to_owned(),
    }
}

fn tls_version_name(version: TlsVersion) -> String {
    match version {
        TlsVersion::Tls1_0 => "1.0".to_owned(),
        TlsVersion::Tls1_1 => "1.1".to_owned(),
        TlsVersion::Tls1_2 => "1.2".to_owned(),
        TlsVersion::Tls1_3 => "1.3".to_owned(),
        TlsVersion::Other(code) => format!("{code:#06x}"),
        _ => "a version of a later revision".to_owned(),
    }
}

fn input_use_name(input: InputUse) -> &'static str {
    match input {
        InputUse::None => "none",
        InputUse::Whole => "whole",
        InputUse::Streaming => "streaming",
        _ => "a use of a later version",
    }
}

fn input_error_status(error: &InputError) -> Option<u16> {
    match error {
        InputError::MalformedBody { .. } => Some(400),
        InputError::BodyLimitExceeded { .. } => Some(413),
        InputError::BodyTimedOut { .. } => Some(408),
        InputError::Truncated { .. }
        | InputError::TooLarge { .. }
        | InputError::ResponseFinished
        | InputError::WouldBlockThread
        | InputError::Io(_) => None,
        _ => None,
    }
}

fn head_error_name(error: &HeadError) -> &'static str {
    match error {
        HeadError::InvalidStatus { .. } => "status",
        HeadError::InformationalStatus { .. } => "informational",
        HeadError::InvalidHeaderName { .. } => "name",
        HeadError::InvalidHeaderValue { .. } => "value",
        HeadError::HopByHop { .. } => "hop-by-hop",
        HeadError::InvalidContentLength { .. } => "content-length",
        _ => "another head error",
    }
}

fn start_error_name(error: &StartError) -> &'static str {
    match error {
        StartError::AlreadyStarted { .. } => "already started",
        StartError::HeadAlreadySent { .. } => "head sent",
        StartError::InvalidHead { .. } => "invalid head",
        _ => "another start error",
    }
}

fn send_error_name(error: &SendError) -> &'static str {
    match error {
        SendError::NotStarted => "not started",
        SendError::ContentLengthExceeded { .. } => "exceeded",
        SendError::BodyNotAllowed { .. } => "no body allowed",
        SendError::Transport(_) => "transport",
        _ => "another send error",
    }
}

fn finish_error_name(error: &FinishError) -> &'static str {
    match error {
        FinishError::NotStarted => "not started",
        FinishError::ContentLengthShort { .. } => "short",
        FinishError::Transport(_) => "transport",
        _ => "another finish error",
    }
}

fn declare_error_name(error: &DeclareError) -> &'static str {
    match error {
        DeclareError::HeadAlreadySent { .. } => "head sent",
        _ => "another declare error",
    }
}

fn environ_error_name(error: &EnvironError) -> &'static str {
    match error {
        EnvironError::InvalidPercentEncoding { .. } => "percent-encoding",
        EnvironError::InvalidScriptName { .. } => "script name",
        _ => "another environ error",
    }
}

#[test]
fn d7_url_scheme_and_addresses_are_matched_with_a_wildcard_arm() {
    assert_eq!(scheme_name(UrlScheme::Http), "http");
    assert_eq!(scheme_name(UrlScheme::Https), "https");

    let peer: SocketAddr = "203.0.113.9:41000".parse().unwrap();
    assert_eq!(address_kind(&Address::Tcp(peer)), "tcp 203.0.113.9:41000");
    let proxied = Address::Proxied {
        address: peer,
        proxy: Box::new(Address::Unix(UnixAddr::Abstract(Bytes::from_static(b"lb")))),
    };
    assert_eq!(address_kind(&proxied), "203.0.113.9:41000 via abstract 2");
    assert_eq!(address_kind(&Address::Unix(UnixAddr::Unnamed)), "unnamed");
    assert_eq!(
        address_kind(&Address::Unix(UnixAddr::Pathname("/run/app.sock".into()))),
        "unix /run/app.sock"
    );

    assert_eq!(tls_version_name(TlsVersion::Tls1_3), "1.3");
    assert_eq!(tls_version_name(TlsVersion::Other(0x7f1c)), "0x7f1c");
    assert_eq!(input_use_name(InputUse::Whole), "whole");
}

#[test]
fn d7_error_enums_are_matched_with_a_wildcard_arm() {
    let malformed = InputError::MalformedBody {
        reason: "chunk size \"zz\"".to_owned(),
    };
    assert_eq!(input_error_status(&malformed), Some(400));
    let stalled = InputError::BodyTimedOut {
        timeout: Duration::from_secs(30),
    };
    assert_eq!(input_error_status(&stalled), Some(408));
    assert_eq!(input_error_status(&InputError::ResponseFinished), None);

    let mut head = rgi::ResponseHead::new(StatusCode::OK);
    head.headers_mut()
        .insert(http::header::CONNECTION, "close".parse().unwrap());
    let refused = head.validate().unwrap_err();
    assert_eq!(head_error_name(&refused), "hop-by-hop");

    let transport = SendError::Transport(io::Error::from(io::ErrorKind::BrokenPipe));
    assert_eq!(send_error_name(&transport), "transport");
    assert_eq!(send_error_name(&SendError::NotStarted), "not started");
    assert_eq!(finish_error_name(&FinishError::NotStarted), "not started");
    let again = StartError::AlreadyStarted {
        current: StatusCode::OK,
        attempted: StatusCode::NOT_FOUND,
    };
    assert_eq!(start_error_name(&again), "already started");
    let late = DeclareError::HeadAlreadySent {
        length: 5,
        sent: None,
    };
    assert_eq!(declare_error_name(&late), "head sent");

    let bad_path = rgi::Environ::builder()
        .uri(http::Uri::from_static("/a%zzb"))
        .build();
    match bad_path {
        Err(error) => assert_eq!(environ_error_name(&error), "percent-encoding"),
        Ok(environ) => panic!("a bad percent-escape was accepted: {:?}", environ.uri()),
    }
}

#[test]
fn d7_structs_with_public_fields_are_built_through_constructors() {
    // Outside the crate these are the only ways to build them; the fields
    // stay readable and assignable.
    let version = SpecVersion::new(1, 0);
    assert!(version < rgi::SPEC_VERSION);
    assert_eq!((version.major, version.minor), (1, 0));

    let mut concurrency = Concurrency::default().with_multiprocess(true);
    concurrency.run_once = true;
    assert!(concurrency.multithread && concurrency.multiprocess && concurrency.run_once);

    let hints = rgi::Hints::default().with_may_block(false);
    assert!(hints.input == InputUse::Streaming && !hints.may_block);
}
