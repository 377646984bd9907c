//! File bodies (`RGI-FILE`): the portable fallback or platform transfer,
//! with the same bytes and rules as any body.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc;

use bytes::Bytes;
use rgi::{Body, BoxError, Environ, FileBody, StartResponse};

use super::super::kit::{
    Event, Events, Served, TempFile, ensure, exchange, expect_nothing_more, expect_status, head,
    head_with_length,
};
use super::input::pattern;
use crate::suite::Failure;
use crate::suite::ServerUnderTest;
use crate::suite::wire::Request;

/// A file body that reports its drop and forwards everything else.
struct Filed {
    inner: FileBody,
    events: mpsc::Sender<Event>,
}

impl Body for Filed {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        self.inner.next_chunk(start)
    }

    fn size_hint(&self) -> Option<u64> {
        self.inner.size_hint()
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        Some(&mut self.inner)
    }
}

impl Drop for Filed {
    fn drop(&mut self) {
        let _ = self.events.send(Event::Dropped);
    }
}

/// An application serving `path`: `/whole` the whole file with its length,
/// `/bare` without a declared length, `/range` bytes 1000..6000, `/long`
/// the whole file declaring `declared` bytes.
fn file_app(path: PathBuf, declared: u64, events: mpsc::Sender<Event>) -> impl rgi::Application {
    rgi::from_fn(move |environ: Environ, start| {
        let file = File::open(&path)?;
        let length = file.metadata()?.len();
        let (inner, head) = match environ.raw_path() {
            "/range" => (
                FileBody::range(file, 1000, 5000)?,
                head_with_length(200, 5000),
            ),
            "/bare" => (FileBody::new(file)?, head(200)),
            "/long" => (FileBody::new(file)?, head_with_length(200, declared)),
            _ => (FileBody::new(file)?, head_with_length(200, length)),
        };
        start.start(head)?;
        Ok(Filed {
            inner: inner.with_chunk_size(16 * 1024),
            events: events.clone(),
        })
    })
}

sync_case!(
    rgi_file_2_file_body_served_exactly
    ["RGI-FILE-2", "RGI-FILE-5", "RGI-FILE-7"]
    "a FileBody's bytes arrive exactly, with and without a declared length, and the body is dropped"
    => file_exact
);

fn file_exact(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FILE-2";
    let contents = pattern(300 * 1024 + 17);
    let file = TempFile::with(&contents, "RGI-FILE-2")?;
    let (tx, mut events) = Events::channel();
    let served = Served::start(server, file_app(file.path().to_path_buf(), 0, tx), CLAUSE)?;
    for target in ["/whole", "/bare"] {
        let mut conn = served.connect()?;
        let response = exchange(&mut conn, &Request::get(target), "GET", CLAUSE)?;
        expect_status(&response, 200, CLAUSE, target)?;
        ensure(
            response.body.data == contents && response.body.complete,
            CLAUSE,
            || {
                format!(
                    "{target}: {} bytes arrived (complete: {}), expected the file's {} bytes{}",
                    response.body.data.len(),
                    response.body.complete,
                    contents.len(),
                    response
                        .body
                        .data
                        .iter()
                        .zip(&contents)
                        .position(|(a, b)| a != b)
                        .map(|at| format!(", differing from byte {at}"))
                        .unwrap_or_default()
                )
            },
        )?;
        events.expect_dropped("RGI-FILE-7", &format!("after serving {target}"))?;
        events.clear();
    }
    served.stop()?;
    drop(file);
    Ok(())
}

sync_case!(
    rgi_file_5_file_range_and_head
    ["RGI-FILE-5"]
    "a FileBody range sends exactly its bytes, and nothing for HEAD"
    => file_range
);

fn file_range(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FILE-5";
    let contents = pattern(64 * 1024);
    let file = TempFile::with(&contents, "RGI-FILE-2")?;
    let (tx, _events) = Events::channel();
    let served = Served::start(server, file_app(file.path().to_path_buf(), 0, tx), CLAUSE)?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::get("/range"), "GET", CLAUSE)?;
    ensure(
        response.body.data == contents[1000..6000] && response.body.complete,
        CLAUSE,
        || {
            format!(
                "the range 1000..6000 arrived as {} bytes (complete: {})",
                response.body.data.len(),
                response.body.complete
            )
        },
    )?;
    expect_nothing_more(&mut conn, CLAUSE, "after the range")?;
    let mut conn = served.connect()?;
    let response = exchange(&mut conn, &Request::new("HEAD", "/whole"), "HEAD", CLAUSE)?;
    expect_status(&response, 200, CLAUSE, "HEAD of a file")?;
    expect_nothing_more(&mut conn, CLAUSE, "after a HEAD response for a file")?;
    served.stop()?;
    drop(file);
    Ok(())
}

sync_case!(
    rgi_file_5_short_file_closes_the_connection
    ["RGI-FILE-5", "RGI-CL-3"]
    "a file shorter than the declared Content-Length sends what it has, then the connection closes"
    => short_file
);

fn short_file(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    const CLAUSE: &str = "RGI-FILE-5";
    let contents = pattern(1000);
    let file = TempFile::with(&contents, "RGI-FILE-2")?;
    let (tx, _events) = Events::channel();
    let served = Served::start(
        server,
        file_app(file.path().to_path_buf(), 2000, tx),
        CLAUSE,
    )?;
    let mut conn = served.connect()?;
    let response =
        exchange(&mut conn, &Request::get("/long"), "GET", CLAUSE).map_err(|failure| {
            Failure::new(
                CLAUSE,
                format!(
                    "a file shorter than its declared length neither completed nor closed: {}",
                    failure.reason()
                ),
            )
        })?;
    ensure(
        response.body.data == contents && !response.body.complete,
        CLAUSE,
        || {
            format!(
                "expected the file's 1000 bytes and a close before the declared 2000; got {} bytes (complete: {})",
                response.body.data.len(),
                response.body.complete
            )
        },
    )?;
    served.stop()?;
    drop(file);
    Ok(())
}
