//! `Intercept::on_write_result` and `StartResponse::is_head_request`: what
//! a layer learns after the server handled a write, and which method the
//! response state was made for.

use bytes::Bytes;
use http::{Method, StatusCode};
use rgi::{Intercept, ResponseHead, ResponseSink, ResponseState, SendError};

/// A transport that accepts `allowed` data chunks, then reports the client gone.
struct Flaky {
    allowed: usize,
}

impl ResponseSink for Flaky {
    fn send_head(&mut self, _head: ResponseHead) -> std::io::Result<()> {
        Ok(())
    }

    fn send_data(&mut self, _data: Bytes) -> std::io::Result<()> {
        if self.allowed == 0 {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        self.allowed -= 1;
        Ok(())
    }
}

#[derive(Default)]
struct Results(Vec<&'static str>);

impl Intercept for Results {
    fn on_write_result(&mut self, result: Result<(), &SendError>) {
        self.0.push(match result {
            Ok(()) => "ok",
            Err(SendError::Transport(_)) => "transport",
            Err(SendError::NotStarted) => "not started",
            Err(_) => "other",
        });
    }
}

#[test]
fn every_write_result_reaches_the_hook_as_the_application_sees_it() {
    let mut state = ResponseState::new(&Method::GET);
    let mut sink = Flaky { allowed: 1 };
    let mut outer = state.start_response(&mut sink);
    let mut results = Results::default();
    {
        let mut start = outer.intercept(&mut results);
        assert!(matches!(start.write("early"), Err(SendError::NotStarted)));
        start.start(ResponseHead::new(StatusCode::OK)).unwrap();
        start.write("first").unwrap();
        assert!(matches!(
            start.write("second"),
            Err(SendError::Transport(_))
        ));
    }
    assert_eq!(results.0, ["not started", "ok", "transport"]);
}

#[test]
fn nested_hooks_each_see_the_result() {
    let mut state = ResponseState::new(&Method::GET);
    let mut sink = Flaky { allowed: 0 };
    let mut root = state.start_response(&mut sink);
    let (mut outer, mut inner) = (Results::default(), Results::default());
    {
        let mut layer = root.intercept(&mut outer);
        let mut start = layer.intercept(&mut inner);
        start.start(ResponseHead::new(StatusCode::OK)).unwrap();
        assert!(start.write("lost").is_err());
    }
    assert_eq!(outer.0, ["transport"]);
    assert_eq!(inner.0, ["transport"]);
}

#[test]
fn a_hook_that_ignores_results_changes_nothing() {
    struct Silent;
    impl Intercept for Silent {}
    let mut state = ResponseState::new(&Method::GET);
    let mut sink = Flaky { allowed: 1 };
    let mut root = state.start_response(&mut sink);
    let mut hook = Silent;
    let mut start = root.intercept(&mut hook);
    start.start(ResponseHead::new(StatusCode::OK)).unwrap();
    assert!(start.write("kept").is_ok());
}

#[test]
fn the_head_request_flag_follows_the_state_through_layers() {
    for (method, head) in [
        (Method::HEAD, true),
        (Method::GET, false),
        (Method::POST, false),
    ] {
        let mut state = ResponseState::new(&method);
        assert_eq!(state.is_head_request(), head);
        let mut sink = Flaky { allowed: 0 };
        let mut root = state.start_response(&mut sink);
        assert_eq!(root.is_head_request(), head);
        let mut hook = Results::default();
        assert_eq!(root.intercept(&mut hook).is_head_request(), head);
    }
}
