//! What the body's output looks like as a whole, after the head: the
//! shape of the chunks, how the bytes were produced, and what the bytes
//! are.
//!
//! The per-byte rules (no output before the start, the declared length,
//! the size hint) live in the tracker of `state`; this module watches the
//! properties that only show over the whole body:
//! - output that is itself in the chunked transfer coding (`RGI-BODY-9`):
//!   the bytes, concatenated, form a complete chunked message (sizes in
//!   hex, data, the last chunk, the trailer section) with at least one
//!   data chunk; a representation that happens to look like that and is
//!   meant to (`message/*`, `application/http`) is left alone;
//! - a body of many tiny chunks (`RGI-BODY-8`, a warning): at least
//!   [`TINY_CHUNKS`] non-empty chunks under [`TINY_CHUNK`] bytes, making
//!   up nine in ten of the non-empty chunks;
//! - a body whose content was all pushed with `write` (`RGI-WRITE-5`, a
//!   warning): written bytes, and not one yielded.

use rgi::{BoxError, InputError};

use super::rules::{self, Rule};

/// A chunk shorter than this counts as tiny.
pub(crate) const TINY_CHUNK: usize = 16;
/// How many tiny chunks make a body of tiny chunks: far more than a
/// streaming response of small events sends in a test, far fewer than a
/// document streamed byte by byte.
pub(crate) const TINY_CHUNKS: u32 = 1000;

/// A recognizer of the chunked transfer coding (RFC 9112 §7.1), fed the
/// body's bytes in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// Reading a chunk size: the hex digits so far and their value.
    Size { digits: u8, value: u64 },
    /// A chunk extension, up to the CR.
    Extension { value: u64 },
    /// The LF after a chunk-size line.
    SizeLf { value: u64 },
    /// Chunk data still to come.
    Data { left: u64 },
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// A trailer line of `length` bytes so far.
    Trailer { length: u64 },
    /// The LF after a trailer line (or the empty line ending them).
    TrailerLf { length: u64 },
    /// A complete chunked message.
    Done,
    /// Not a chunked message.
    Invalid,
}

impl Framing {
    /// Feeds `bytes`; `chunks` counts the data chunks completed.
    fn feed(mut self, mut bytes: &[u8], chunks: &mut u64) -> Self {
        while let Some((&byte, rest)) = bytes.split_first() {
            if let Framing::Data { left } = self {
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                bytes = &bytes[take..];
                let left = left - take as u64;
                self = if left == 0 {
                    Framing::DataCr
                } else {
                    Framing::Data { left }
                };
                continue;
            }
            bytes = rest;
            self = self.step(byte, chunks);
            if self == Framing::Invalid {
                break;
            }
        }
        self
    }

    fn step(self, byte: u8, chunks: &mut u64) -> Self {
        match (self, byte) {
            (Framing::Size { digits, value }, _) if byte.is_ascii_hexdigit() && digits < 15 => {
                let digit = u64::from(char::from(byte).to_digit(16).unwrap_or(0));
                Framing::Size {
                    digits: digits + 1,
                    value: value * 16 + digit,
                }
            }
            (Framing::Size { digits, value }, b';') if digits > 0 => Framing::Extension { value },
            (Framing::Size { digits, value }, b'\r') if digits > 0 => Framing::SizeLf { value },
            (Framing::Extension { value }, b'\r') => Framing::SizeLf { value },
            (Framing::Extension { value }, _) if byte != b'\n' => Framing::Extension { value },
            (Framing::SizeLf { value: 0 }, b'\n') => Framing::Trailer { length: 0 },
            (Framing::SizeLf { value }, b'\n') => Framing::Data { left: value },
            (Framing::DataCr, b'\r') => Framing::DataLf,
            (Framing::DataLf, b'\n') => {
                *chunks += 1;
                Framing::Size {
                    digits: 0,
                    value: 0,
                }
            }
            (Framing::Trailer { length }, b'\r') => Framing::TrailerLf { length },
            (Framing::Trailer { length }, _) if byte != b'\n' => Framing::Trailer {
                length: length.saturating_add(1),
            },
            (Framing::TrailerLf { length: 0 }, b'\n') => Framing::Done,
            (Framing::TrailerLf { .. }, b'\n') => Framing::Trailer { length: 0 },
            _ => Framing::Invalid,
        }
    }
}

/// The whole-body watch of one response.
#[derive(Debug, Clone)]
pub(crate) struct OutputWatch {
    framing: Framing,
    /// Data chunks of the recognized chunked coding.
    framed_chunks: u64,
    /// Non-empty chunks yielded, and how many of them were tiny.
    nonempty: u32,
    tiny: u32,
    /// Bytes yielded and bytes written.
    yielded: u64,
    written: u64,
}

impl Default for OutputWatch {
    fn default() -> Self {
        OutputWatch {
            framing: Framing::Size {
                digits: 0,
                value: 0,
            },
            framed_chunks: 0,
            nonempty: 0,
            tiny: 0,
            yielded: 0,
            written: 0,
        }
    }
}

/// A finding of the watch: the rule, the message and the value.
pub(crate) type Finding = (Rule, &'static str, String);

impl OutputWatch {
    /// Body bytes the application produced (after the start, in a response
    /// that may have content); `written` says whether through `write`.
    pub(crate) fn on_bytes(&mut self, bytes: &[u8], written: bool) {
        if bytes.is_empty() {
            return;
        }
        if self.framing != Framing::Invalid {
            self.framing = self.framing.feed(bytes, &mut self.framed_chunks);
        }
        if written {
            self.written = self.written.saturating_add(bytes.len() as u64);
        } else {
            self.yielded = self.yielded.saturating_add(bytes.len() as u64);
        }
    }

    /// `len` bytes the watch cannot see (sent from a file by the server):
    /// the body is no longer a chunked message it could recognize.
    pub(crate) fn on_opaque(&mut self, len: u64) {
        self.framing = Framing::Invalid;
        self.yielded = self.yielded.saturating_add(len);
    }

    /// A non-empty chunk of `len` bytes; a finding once the body is one of
    /// tiny chunks.
    pub(crate) fn on_chunk_len(&mut self, len: usize) -> Option<Finding> {
        if len == 0 {
            return None;
        }
        self.nonempty = self.nonempty.saturating_add(1);
        if len < TINY_CHUNK {
            self.tiny = self.tiny.saturating_add(1);
        }
        let mostly_tiny = u64::from(self.tiny) * 10 >= u64::from(self.nonempty) * 9;
        (self.tiny >= TINY_CHUNKS && mostly_tiny).then(|| {
            (
                rules::TINY_CHUNKS,
                "the body yields its content in many tiny chunks; each may cost a system call and a chunk header",
                format!(
                    "{} of {} non-empty chunks under {TINY_CHUNK} bytes",
                    self.tiny, self.nonempty
                ),
            )
        })
    }

    /// What the whole body shows once it ended normally; `raw_message`
    /// says the content type is a serialized HTTP message.
    pub(crate) fn on_end(&self, raw_message: bool) -> Vec<Finding> {
        let mut found = Vec::new();
        if self.framing == Framing::Done && self.framed_chunks > 0 && !raw_message {
            found.push((
                rules::OUTPUT_TRANSFER_CODED,
                "the body is itself in the chunked transfer coding; the server frames the body, the application must not",
                format!(
                    "{} bytes forming {} data chunk(s) and a last chunk",
                    self.yielded + self.written,
                    self.framed_chunks
                ),
            ));
        }
        if self.written > 0 && self.yielded == 0 {
            found.push((
                rules::OUTPUT_ALL_WRITTEN,
                "the application pushed all of its content with write instead of returning it from the body",
                format!("{} bytes written, none yielded", self.written),
            ));
        }
        found
    }
}

/// Whether `error`, or an error in its `source()` chain, is an
/// [`InputError`] (directly or inside an `io::Error`): the client's fault
/// let through (`RGI-FAIL-12`).
pub(crate) fn carries_input_error(error: &BoxError) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&**error);
    while let Some(error) = next {
        let input = error.downcast_ref::<InputError>().is_some()
            || error
                .downcast_ref::<std::io::Error>()
                .and_then(InputError::from_io)
                .is_some();
        if input {
            return true;
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(parts: &[&[u8]]) -> (Framing, u64) {
        let mut watch = OutputWatch::default();
        for part in parts {
            watch.on_bytes(part, false);
        }
        (watch.framing, watch.framed_chunks)
    }

    #[test]
    fn recognizes_chunked_messages_split_anywhere() {
        assert_eq!(
            framing(&[b"5\r\nhello\r\n", b"0\r\n\r\n"]),
            (Framing::Done, 1)
        );
        assert_eq!(
            framing(&[b"5\r\nhel", b"lo\r", b"\n0\r\n\r\n"]),
            (Framing::Done, 1)
        );
        assert_eq!(
            framing(&[b"3;x=1\r\nabc\r\n0\r\nExpires: never\r\n\r\n"]),
            (Framing::Done, 1)
        );
        assert_eq!(framing(&[b"hello"]).0, Framing::Invalid);
        assert_eq!(
            framing(&[b"5\r\nhello\r\n0\r\n\r\nmore"]).0,
            Framing::Invalid
        );
        assert_eq!(framing(&[b"5\r\nhello!\r\n"]).0, Framing::Invalid);
    }
}
