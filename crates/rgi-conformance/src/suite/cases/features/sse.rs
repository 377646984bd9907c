//! Server-sent events (spec/rgi.md §16.5, spec/rgi-async.md §19.3): each
//! event, and each keep-alive comment, reaches the client when the
//! application produced it (`RGI-SSE-3`).

use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use rgi::Environ;
use rgi::sse::{Event, EventBody, KEEP_ALIVE};
use rgi_async::sse::EventStream;

use super::super::kit::{Esc, Served, WAIT, ensure, recv};
use super::support::Feed;
use crate::suite::wire::{BodyReader, Framing, Request};
use crate::suite::{Failure, Probe, ServerUnderTest};

const CLAUSE: &str = "RGI-SSE-3";

/// How often the synchronous stream sends a keep-alive when idle.
const KEEP_ALIVE_EVERY: Duration = Duration::from_millis(200);

/// How the case drives one event stream: sends an event, ticks a
/// keep-alive, ends the stream.
trait Drive {
    fn send(&self, event: Event);
    /// Asks for a keep-alive; `false` when the stream sends them by
    /// itself when idle.
    fn tick(&self) -> bool;
    fn end(self: Box<Self>);
}

/// The synchronous stream's channel.
struct Channel(Sender<Event>);

impl Drive for Channel {
    fn send(&self, event: Event) {
        let _ = self.0.send(event);
    }

    fn tick(&self) -> bool {
        false
    }

    fn end(self: Box<Self>) {}
}

/// The asynchronous stream's feeds: events, and keep-alive ticks.
struct Feeds {
    events: Feed<Event>,
    ticks: Feed<()>,
}

impl Drive for Feeds {
    fn send(&self, event: Event) {
        self.events.push(event);
    }

    fn tick(&self) -> bool {
        self.ticks.push(());
        true
    }

    fn end(self: Box<Self>) {
        self.events.end();
    }
}

/// The synchronous probe: an `EventBody` over a channel whose sender it
/// hands the case, with short keep-alives.
fn sync_probe(drivers: Sender<Box<dyn Drive + Send>>) -> impl rgi::Application {
    rgi::from_fn(move |_environ: Environ, start| {
        let (events, receiver) = mpsc::channel();
        let _ = drivers.send(Box::new(Channel(events)));
        start.start(rgi::sse::head())?;
        Ok(EventBody::new(receiver).keep_alive(KEEP_ALIVE_EVERY))
    })
}

/// The asynchronous probe: an `EventStream` over feeds the case drives.
fn async_probe(drivers: Sender<Box<dyn Drive + Send>>) -> impl rgi_async::AsyncApplication {
    rgi_async::from_fn(move |_environ: Environ, _start| {
        let (events, ticks) = (Feed::new(), Feed::new());
        let _ = drivers.send(Box::new(Feeds {
            events: events.clone(),
            ticks: ticks.clone(),
        }));
        Ok(EventStream::new(events).keep_alive(ticks))
    })
}

feature_case!(
    rgi_sse_3_each_event_sent_at_once
    needs Nothing
    ["RGI-SSE-3"]
    "an event stream's first event reaches the client before the second is produced, a keep-alive comment passes through while it is idle, and the stream ends completely"
    => each_event_sent_at_once
);

feature_case!(
    rgi_sse_3_async_each_event_sent_at_once
    needs Asynchronous
    ["RGI-SSE-3", "RGIA-SSE-1"]
    "as rgi_sse_3_each_event_sent_at_once, for rgi_async::sse::EventStream with keep-alives the case ticks"
    => async_each_event_sent_at_once
);

fn each_event_sent_at_once(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    let (tx, drivers) = mpsc::channel();
    judge_stream(server, Probe::sync(sync_probe(tx)), &drivers)
}

fn async_each_event_sent_at_once(server: &dyn ServerUnderTest) -> Result<(), Failure> {
    let (tx, drivers) = mpsc::channel();
    judge_stream(server, Probe::asynchronous(async_probe(tx)), &drivers)
}

/// Reads the stream until `wanted` follows what was read so far (event
/// frames and keep-alives), within [`WAIT`]; keep-alives before it are
/// skipped unless `wanted` is one.
fn read_until(
    reader: &mut BodyReader<'_>,
    seen: &mut Vec<u8>,
    wanted: &[u8],
    what: &str,
) -> Result<(), Failure> {
    reader.extend_deadline(WAIT);
    loop {
        while seen.starts_with(KEEP_ALIVE) && wanted != KEEP_ALIVE {
            seen.drain(..KEEP_ALIVE.len());
        }
        if seen.starts_with(wanted) {
            seen.drain(..wanted.len());
            return Ok(());
        }
        if !wanted.starts_with(seen) && !KEEP_ALIVE.starts_with(seen) {
            return Err(Failure::new(
                CLAUSE,
                format!(
                    "waiting for {what}, the stream carried {} instead",
                    Esc(seen)
                ),
            ));
        }
        match reader.next_data() {
            Ok(Some(piece)) => seen.extend_from_slice(&piece),
            Ok(None) => {
                return Err(Failure::new(
                    CLAUSE,
                    format!("the stream ended while the client waited for {what}"),
                ));
            }
            Err(error) => {
                return Err(Failure::new(
                    if error.is_framing() {
                        "RGI-CL-9"
                    } else {
                        CLAUSE
                    },
                    format!(
                        "{what} did not reach the client while the application waited for it to arrive: {error}"
                    ),
                ));
            }
        }
    }
}

fn judge_stream(
    server: &dyn ServerUnderTest,
    probe: Probe,
    drivers: &Receiver<Box<dyn Drive + Send>>,
) -> Result<(), Failure> {
    let served = Served::with_probe(server, probe, CLAUSE)?;
    let mut conn = served.connect()?;
    conn.send(&Request::get("/events").to_bytes())
        .map_err(|error| Failure::new(CLAUSE, format!("sending the request: {error}")))?;
    let drive = recv(drivers, WAIT, CLAUSE, "the application was not called")?;
    let first = Event::from_data("first");
    drive.send(first.clone());
    let (_, head) = conn.read_final_head().map_err(|error| {
        Failure::new(
            CLAUSE,
            format!("the head and first event of the stream did not arrive: {error}"),
        )
    })?;
    ensure(head.status == 200, CLAUSE, || {
        format!("the event stream's head is {}", Esc(&head.raw))
    })?;
    let mut reader = conn
        .body_reader(&head, "GET")
        .map_err(|error| Failure::new("RGI-CL-9", format!("the stream's framing: {error}")))?;
    ensure(reader.framing() != Framing::NoBody, CLAUSE, || {
        "the event stream has no body".to_owned()
    })?;
    let mut seen = Vec::new();
    read_until(
        &mut reader,
        &mut seen,
        &first.to_bytes(),
        "the first event, before the second was produced",
    )?;
    let ticked = drive.tick();
    read_until(
        &mut reader,
        &mut seen,
        KEEP_ALIVE,
        if ticked {
            "the keep-alive comment the stream sent when ticked"
        } else {
            "a keep-alive comment while the stream was idle"
        },
    )?;
    let second = Event::new()
        .id("2")
        .map(|event| event.data("second\nline"))
        .map_err(|error| Failure::new(CLAUSE, format!("the suite's own event: {error}")))?;
    drive.send(second.clone());
    read_until(
        &mut reader,
        &mut seen,
        &second.to_bytes(),
        "the second event",
    )?;
    drive.end();
    reader.extend_deadline(WAIT);
    loop {
        match reader.next_data() {
            Ok(Some(piece)) => seen.extend_from_slice(&piece),
            Ok(None) => break,
            Err(error) => {
                return Err(Failure::new(
                    CLAUSE,
                    format!("the stream did not end after its source did: {error}"),
                ));
            }
        }
    }
    while seen.starts_with(KEEP_ALIVE) {
        seen.drain(..KEEP_ALIVE.len());
    }
    ensure(seen.is_empty() && reader.is_complete(), CLAUSE, || {
        format!(
            "after the last event the stream carried {} and ended {}",
            Esc(&seen),
            if reader.is_complete() {
                "completely"
            } else {
                "incompletely"
            }
        )
    })?;
    served.stop()
}
