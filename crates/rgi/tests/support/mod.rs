//! Shared test transport: records what a server would put on the wire, and
//! can fail like a vanished client.

#![allow(dead_code)]

use std::io;

use bytes::Bytes;
use rgi::{ResponseHead, ResponseSink};

/// What reached the transport, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sent {
    Head(ResponseHead),
    Data(Bytes),
}

#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub(crate) sent: Vec<Sent>,
    /// Fail every call once this many calls succeeded.
    pub(crate) fail_after: Option<usize>,
}

impl Recorder {
    pub(crate) fn failing_after(calls: usize) -> Self {
        Recorder {
            sent: Vec::new(),
            fail_after: Some(calls),
        }
    }

    pub(crate) fn heads(&self) -> Vec<&ResponseHead> {
        self.sent
            .iter()
            .filter_map(|sent| match sent {
                Sent::Head(head) => Some(head),
                Sent::Data(_) => None,
            })
            .collect()
    }

    pub(crate) fn body(&self) -> Vec<u8> {
        self.sent
            .iter()
            .filter_map(|sent| match sent {
                Sent::Data(data) => Some(data.as_ref()),
                Sent::Head(_) => None,
            })
            .flatten()
            .copied()
            .collect()
    }

    fn record(&mut self, sent: Sent) -> io::Result<()> {
        if self
            .fail_after
            .is_some_and(|limit| self.sent.len() >= limit)
        {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "client went away",
            ));
        }
        self.sent.push(sent);
        Ok(())
    }
}

impl ResponseSink for Recorder {
    fn send_head(&mut self, head: ResponseHead) -> io::Result<()> {
        self.record(Sent::Head(head))
    }

    fn send_data(&mut self, data: Bytes) -> io::Result<()> {
        assert!(!data.is_empty(), "rgi must never send an empty chunk");
        self.record(Sent::Data(data))
    }
}
