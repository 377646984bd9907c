//! Checks of the `Environ` the server hands in, beyond the invariants
//! `EnvironBuilder::build` already enforces (a middleware above the
//! validator can still break them through `headers_mut` or
//! `replace_input`, and some facts `build` cannot know).

use std::net::{IpAddr, Ipv6Addr};

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING, UPGRADE};
use http::uri::Authority;
use http::{HeaderMap, HeaderValue, Version};
use rgi::{Environ, UrlScheme};
use rgi_async::Capabilities;

use super::rules;
use super::state::Tracker;

/// The checks every request gets, synchronous or not.
pub(crate) fn check(environ: &Environ, t: &mut Tracker) {
    check_host(environ, t);
    check_framing(environ, t);
    check_server(environ, t);
}

/// The checks only a request for an asynchronous application gets.
pub(crate) fn check_async(environ: &Environ, t: &mut Tracker) {
    match Capabilities::of(environ) {
        None => t.violate(
            &rules::CAPABILITIES_MISSING,
            "an asynchronous application was called without rgi_async::Capabilities in the environ",
            "Capabilities::of(&environ) is None",
        ),
        Some(capabilities) => {
            t.declares_tokio = capabilities.runtime() == Some(rgi_async::Runtime::Tokio);
            let version = capabilities.spec_version();
            let ours = rgi_async::SPEC_VERSION;
            if version.major != ours.major || version > ours {
                t.violate(
                    &rules::CAPABILITIES_VERSION,
                    format!(
                        "the server claims RGI-async {version}, but the interface it uses is {ours}"
                    ),
                    version.to_string(),
                );
            }
            if capabilities.upgrade().is_some() {
                check_upgrade_offer(environ, t);
            }
        }
    }
    if !environ.input().is_async() {
        t.violate(
            &rules::ASYNC_INPUT_BLOCKING_ONLY,
            "the input of a request for an asynchronous application has no non-blocking face",
            "Input::is_async() is false",
        );
    }
}

fn check_host(environ: &Environ, t: &mut Tracker) {
    let hosts: Vec<&HeaderValue> = environ.headers().get_all(HOST).iter().collect();
    if let Some(authority) = environ.uri().authority() {
        let expected = without_userinfo(authority);
        let agrees = matches!(hosts.as_slice(), [host] if host.as_bytes().eq_ignore_ascii_case(expected.as_bytes()));
        if !agrees {
            t.violate(
                &rules::ABSOLUTE_FORM_HOST,
                "for an absolute-form target the host field must be replaced by the target's authority",
                format!("target authority {expected:?}, host fields {hosts:?}"),
            );
        }
        return;
    }
    match hosts.as_slice() {
        [] if environ.version() == Version::HTTP_11 => t.violate(
            &rules::HOST_MISSING,
            "an HTTP/1.1 request without a host field reached the application (the server answers 400)",
            "no host field",
        ),
        [] => {}
        [host] => {
            if !valid_host(host) {
                t.violate(
                    &rules::HOST_INVALID,
                    "the host field is not a valid authority (the server answers 400)",
                    format!("{host:?}"),
                );
            }
        }
        several => t.violate(
            &rules::HOST_REPEATED,
            "a request with more than one host field reached the application (the server answers 400)",
            format!("{several:?}"),
        ),
    }
}

/// The authority as a host field carries it: no userinfo.
fn without_userinfo(authority: &Authority) -> String {
    match authority.port() {
        Some(port) => format!("{}:{}", authority.host(), port.as_str()),
        None => authority.host().to_owned(),
    }
}

fn valid_host(value: &HeaderValue) -> bool {
    match Authority::try_from(value.as_bytes()) {
        Ok(authority) => !authority.as_str().contains('@') && !authority.host().is_empty(),
        Err(_) => false,
    }
}

fn check_framing(environ: &Environ, t: &mut Tracker) {
    if let Some(value) = environ.headers().get(TRANSFER_ENCODING) {
        t.violate(
            &rules::TRANSFER_ENCODING_LEFT,
            "the request still carries transfer-encoding; the server decodes the body and removes it",
            format!("{value:?}"),
        );
    }
    match declared_length(environ.headers()) {
        Err(value) => t.violate(
            &rules::CONTENT_LENGTH_FIELD_INVALID,
            "the content-length field is not a single decimal number",
            format!("{value:?}"),
        ),
        Ok(Some(header)) if environ.input().content_length() != Some(header) => {
            let value = format!(
                "field {header}, input {:?}",
                environ.input().content_length()
            );
            if super::input_chain::length_agreed_outside(environ) {
                t.violate(
                    &rules::MW_INPUT_LENGTH_DISAGREES,
                    "a middleware replaced the input or edited the content-length field, and the two no longer agree",
                    value.clone(),
                );
            }
            t.violate(
                &rules::CONTENT_LENGTH_DISAGREES,
                "the content-length field and the input's declared length differ",
                value,
            );
        }
        Ok(_) => {}
    }
}

/// Whether the environ's content-length field, if it has a valid one,
/// agrees with the input's declared length.
pub(crate) fn length_field_agrees(environ: &Environ) -> bool {
    match declared_length(environ.headers()) {
        Ok(Some(header)) => environ.input().content_length() == Some(header),
        Ok(None) => true,
        // An invalid field is the server's own violation, not a change a
        // middleware made.
        Err(_) => false,
    }
}

/// The length the content-length fields declare: each element a decimal
/// number, all equal (RFC 9110 §8.6). `Err` carries the offending value.
fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, HeaderValue> {
    let mut declared = None;
    for value in headers.get_all(CONTENT_LENGTH) {
        let text = value.to_str().map_err(|_| value.clone())?;
        for element in text.split(',') {
            let element = element.trim_matches([' ', '\t']);
            if element.is_empty() || !element.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(value.clone());
            }
            let length: u64 = element.parse().map_err(|_| value.clone())?;
            if declared.is_some_and(|earlier| earlier != length) {
                return Err(value.clone());
            }
            declared = Some(length);
        }
    }
    Ok(declared)
}

fn check_server(environ: &Environ, t: &mut Tracker) {
    let name = environ.server_name();
    if !valid_server_name(name) {
        t.violate(
            &rules::SERVER_NAME_INVALID,
            "server_name is not a host name or address literal (a port, a path or spaces in it?)",
            name.to_owned(),
        );
    }
    if environ.server_port() == 0 {
        t.violate(
            &rules::SERVER_PORT_ZERO,
            "server_port is 0, which no connection is accepted on",
            "0",
        );
    }
    if environ.url_scheme() == UrlScheme::Http && environ.server_port() == 443 {
        t.violate(
            &rules::HTTP_SCHEME_ON_TLS_PORT,
            "a request that arrived on the HTTPS port is labelled http; a server that terminates TLS says https",
            format!("http on port {}", environ.server_port()),
        );
    }
    let unspecified = environ
        .remote_addr()
        .filter(|peer| peer.ip().is_unspecified() || peer.port() == 0);
    if let Some(peer) = unspecified {
        t.violate(
            &rules::REMOTE_ADDR_UNSPECIFIED,
            "remote_addr is not a peer's address; use None when the transport has none",
            peer.to_string(),
        );
    }
    let concurrency = environ.concurrency();
    if concurrency.run_once && concurrency.multithread {
        t.violate(
            &rules::CONCURRENCY_CONTRADICTORY,
            "the server says it calls the application only once, yet also from other threads at the same time",
            format!("{concurrency:?}"),
        );
    }
}

/// A reg-name (RFC 3986: unreserved, percent-encoded and sub-delims
/// characters), an IPv4 address or an IPv6 address, bracketed or not.
fn valid_server_name(name: &str) -> bool {
    if name.parse::<IpAddr>().is_ok() {
        return true;
    }
    if let Some(inner) = name
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        return inner.parse::<Ipv6Addr>().is_ok();
    }
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&byte))
}

fn check_upgrade_offer(environ: &Environ, t: &mut Tracker) {
    let asked = environ.headers().contains_key(UPGRADE)
        && environ
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    if environ.version() != Version::HTTP_11 || !asked {
        t.violate(
            &rules::UPGRADE_OFFERED_WRONGLY,
            "the upgrade capability was offered for a request that cannot be upgraded",
            format!(
                "{:?}, upgrade field {:?}, connection fields {:?}",
                environ.version(),
                environ.headers().get(UPGRADE),
                environ
                    .headers()
                    .get_all(CONNECTION)
                    .iter()
                    .collect::<Vec<_>>()
            ),
        );
    }
}
