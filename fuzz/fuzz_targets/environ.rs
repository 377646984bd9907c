//! Environ building and path splitting from a peer's request: arbitrary
//! method, target, version, header fields and mount point, then
//! `shift_path` until it stops. Nothing may panic, a built environ keeps
//! its path invariants, and every shift moves bytes without losing any.

#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Uri, Version};
use libfuzzer_sys::fuzz_target;
use rgi::{Environ, Input};

#[derive(Debug, Arbitrary)]
struct Request<'a> {
    method: &'a [u8],
    target: &'a [u8],
    version: u8,
    script_name: &'a [u8],
    headers: Vec<(&'a [u8], &'a [u8])>,
    /// The framing the server chose for the body: a length, or none.
    framing: Option<u64>,
    body: &'a [u8],
    shifts: u8,
}

fuzz_target!(|request: Request<'_>| {
    let mut builder = Environ::builder();
    if let Ok(method) = Method::from_bytes(request.method) {
        builder = builder.method(method);
    }
    if let Ok(uri) = Uri::try_from(request.target) {
        builder = builder.uri(uri);
    }
    builder = builder.version(match request.version % 4 {
        0 => Version::HTTP_10,
        1 => Version::HTTP_11,
        2 => Version::HTTP_2,
        _ => Version::HTTP_3,
    });
    for (name, value) in request.headers {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            builder = builder.header(name, value);
        }
    }
    builder = builder
        .script_name(Bytes::copy_from_slice(request.script_name))
        .input(Input::new(
            std::io::Cursor::new(request.body.to_vec()),
            request.framing,
        ));
    let Ok(mut environ) = builder.build() else {
        return;
    };

    let script_name = environ.script_name().as_bytes().to_vec();
    let path_info = environ.path_info().as_bytes().to_vec();
    assert!(script_name.is_empty() || (script_name[0] == b'/' && !script_name.ends_with(b"/")));
    assert!(path_info.is_empty() || path_info[0] == b'/' || path_info == b"*");
    let whole = [script_name, path_info].concat();
    let _ = (
        environ.request_url(),
        environ.query_string(),
        environ.content_length(),
    );

    for _ in 0..request.shifts {
        let before = environ.script_name().len();
        let Some(segment) = environ.shift_path() else {
            break;
        };
        assert!(segment.as_bytes().starts_with(b"/"));
        assert!(!environ.script_name().as_bytes().ends_with(b"/"));
        assert_eq!(environ.script_name().len(), before + segment.len());
        let now = [
            environ.script_name().as_bytes(),
            environ.path_info().as_bytes(),
        ]
        .concat();
        assert_eq!(now, whole, "shift_path moved bytes it did not keep");
    }
});
