//! Three small synchronous RGI applications, the ones `docs/rgi-server.md`
//! sets beside their usual axum shape: a hello, a JSON echo of a POST
//! body, and a path-routed application with a 404. Shared by the
//! `small_apps` example and the server's `small_apps` test.
//!
//! None of them blocks, so each declares it in its hints and runs inline
//! on the runtime's workers: the first and the third read no body, the
//! echo reads its body whole (the server reads it into memory first).

use std::fmt::Write as _;

use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use rgi::{Application, Environ, Hints, InputUse, ResponseHead};

/// The largest body the echo accepts; a longer one is answered `413`.
pub(crate) const ECHO_LIMIT: usize = 64 * 1024;

fn text_plain() -> HeaderValue {
    HeaderValue::from_static("text/plain; charset=utf-8")
}

/// `GET` anything: `Hello, world!`.
pub(crate) fn hello() -> impl Application {
    rgi::from_fn(|_environ: Environ, start| {
        start.start(ResponseHead::new(StatusCode::OK).with_header(CONTENT_TYPE, text_plain()))?;
        Ok(String::from("Hello, world!\n"))
    })
    .with_hints(
        Hints::default()
            .with_input(InputUse::None)
            .with_may_block(false),
    )
}

/// `POST` a UTF-8 body of up to [`ECHO_LIMIT`] bytes: a JSON object with
/// its length and the body as a JSON string. Other methods get `405`, a
/// body that is not UTF-8 gets `400`.
pub(crate) fn json_echo() -> impl Application {
    rgi::from_fn(|mut environ: Environ, start| {
        if environ.method() != Method::POST {
            start.start(
                ResponseHead::new(StatusCode::METHOD_NOT_ALLOWED)
                    .with_header(ALLOW, HeaderValue::from_static("POST")),
            )?;
            return Ok(String::new());
        }
        // A body over the limit fails the read with `InputError::TooLarge`;
        // handing that error back before the head makes the server answer
        // `413`, as it does for any client fault in the body.
        let body = environ.input_mut().read_to_bytes(ECHO_LIMIT)?;
        let Ok(text) = std::str::from_utf8(&body) else {
            start.start(
                ResponseHead::new(StatusCode::BAD_REQUEST).with_header(CONTENT_TYPE, text_plain()),
            )?;
            return Ok(String::from("the body is not UTF-8\n"));
        };
        let mut json = format!("{{\"length\":{},\"echo\":", body.len());
        push_json_string(&mut json, text);
        json.push('}');
        start.start(
            ResponseHead::new(StatusCode::OK)
                .with_header(CONTENT_TYPE, HeaderValue::from_static("application/json")),
        )?;
        Ok(json)
    })
    .with_hints(
        Hints::default()
            .with_input(InputUse::Whole)
            .with_may_block(false),
    )
}

/// `text` as a JSON string (RFC 8259 §7): quotes, backslashes and control
/// characters escaped, everything else as it is.
pub(crate) fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for character in text.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            control if u32::from(control) < 0x20 => {
                // Writing into a `String` cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(control));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

/// Where a request goes.
enum Route {
    Home,
    User(String),
    NotFound,
}

/// Routes by path segments: `/` and `/users/{id}`. Segments are those of
/// the raw path, so `/users/a%2Fb` names the user `a/b`.
fn route(environ: &mut Environ) -> Route {
    let Some(first) = environ.shift_path() else {
        // Nothing to shift: the path is `/` (or `*`, or empty).
        return if environ.path_info() == "/" {
            Route::Home
        } else {
            Route::NotFound
        };
    };
    if first != "/users" {
        return Route::NotFound;
    }
    let Some(id) = environ.shift_path() else {
        return Route::NotFound;
    };
    if !environ.path_info().is_empty() {
        return Route::NotFound;
    }
    match id.to_str() {
        // `shift_path` returns the segment with its leading `/`.
        Ok(id) => Route::User(id.trim_start_matches('/').to_owned()),
        Err(_) => Route::NotFound,
    }
}

/// `GET /` and `GET /users/{id}`; `405` for another method on those
/// paths, `404` for any other path.
pub(crate) fn routes() -> impl Application {
    rgi::from_fn(|mut environ: Environ, start| {
        let readable = matches!(*environ.method(), Method::GET | Method::HEAD);
        let (status, text) = match route(&mut environ) {
            Route::NotFound => (StatusCode::NOT_FOUND, String::from("not found\n")),
            _ if !readable => {
                start.start(
                    ResponseHead::new(StatusCode::METHOD_NOT_ALLOWED)
                        .with_header(ALLOW, HeaderValue::from_static("GET, HEAD")),
                )?;
                return Ok(String::new());
            }
            Route::Home => (StatusCode::OK, String::from("home\n")),
            Route::User(id) => (StatusCode::OK, format!("user {id}\n")),
        };
        start.start(ResponseHead::new(status).with_header(CONTENT_TYPE, text_plain()))?;
        Ok(text)
    })
    .with_hints(
        Hints::default()
            .with_input(InputUse::None)
            .with_may_block(false),
    )
}
