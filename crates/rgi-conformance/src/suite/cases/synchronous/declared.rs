//! A length the server declared from an exact size hint, against a body
//! that starts its head lazily and then yields more than the hint
//! (defect D1 of RGI 1.0: the declaration was lost when the head was
//! stored, and the excess went out past the Content-Length sent).

use bytes::Bytes;
use rgi::{Body, BoxError, Environ, StartResponse};

use super::super::kit::{Esc, OrFail, Served, ensure, expect_status, head, head_with_length};
use crate::suite::{Failure, ServerUnderTest};

/// A body whose size hint promises five bytes, whose head is stored in
/// the first pull without a Content-Length, and which then yields seven
/// more.
struct Overrunning {
    pulls: u8,
}

impl Body for Overrunning {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.pulls += 1;
        match self.pulls {
            1 => {
                if let Err(err) = start.start(head(200)) {
                    return Some(Err(err.into()));
                }
                Some(Ok(Bytes::from_static(b"hello")))
            }
            2 => Some(Ok(Bytes::from_static(b" world!"))),
            _ => None,
        }
    }

    fn size_hint(&self) -> Option<u64> {
        Some(5)
    }
}

/// `/lazy` gets [`Overrunning`]; anything else a plain answer naming its
/// path.
fn app() -> impl rgi::Application {
    rgi::from_fn(
        |environ: Environ, start| -> Result<Box<dyn Body>, BoxError> {
            if environ.raw_path() == "/lazy" {
                return Ok(Box::new(Overrunning { pulls: 0 }));
            }
            let answer = format!("answer to {}", environ.raw_path());
            start.start(head_with_length(200, answer.len() as u64))?;
            Ok(Box::new(Bytes::from(answer)))
        },
    )
}

sync_case!(
    rgi_cl_10_declared_length_joins_a_lazy_head
    ["RGI-CL-10", "RGI-CL-1"]
    "a body with an exact size hint that starts its head lazily without Content-Length and yields more than the hint: nothing goes out past the Content-Length sent, and a pipelined second request gets its own well-formed response or a close"
    => declared_length_joins_a_lazy_head
);

fn declared_length_joins_a_lazy_head(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-CL-10";
    let served = Served::start(server, app(), CLAUSE)?;
    let mut conn = served.connect()?;
    conn.send(
        b"GET /lazy HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\nGET /second HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n",
    )
    .or_fail(CLAUSE, "sending two pipelined requests")?;
    let first = conn
        .read_response("GET")
        .or_fail(CLAUSE, "reading the response to /lazy")?;
    expect_status(&first, 200, CLAUSE, "the lazily started response")?;
    if let Some(declared) = first.head.field_text("content-length") {
        ensure(
            declared == first.body.data.len().to_string() && first.body.data == b"hello",
            "RGI-CL-1",
            || {
                format!(
                    "the head carries content-length: {declared}, the body before the next response is {}",
                    Esc(&first.body.data)
                )
            },
        )?;
    }
    match conn.read_response("GET") {
        Ok(second) => {
            expect_status(&second, 200, CLAUSE, "the pipelined request after /lazy")?;
            ensure(second.body.data == b"answer to /second", CLAUSE, || {
                format!(
                    "the second response's body is {}, expected \"answer to /second\"",
                    Esc(&second.body.data)
                )
            })
        }
        Err(err) if err.is_closed() => Ok(()),
        Err(err) => Err(Failure::new(
            CLAUSE,
            format!(
                "after the response to /lazy (head {:?}), the next bytes are not a response: {err}",
                first.head.field_text("content-length")
            ),
        )),
    }?;
    served.stop()
}
