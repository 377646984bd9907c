//! A strict decoder of the chunked transfer coding (RFC 9112 §7.1): CRLF
//! line endings only, hexadecimal sizes checked for overflow, chunk
//! extensions checked against their grammar and discarded, the body limit
//! applied as soon as a chunk is announced (`[RGI-INPUT-17]`,
//! `[RGI-INPUT-18]`), and the trailer section parsed as strictly as a
//! request head and kept for the request's input (`[RGI-TRAILER-1]`).

use http::{HeaderMap, StatusCode};

use crate::head::{self, FieldBudget, Section};

/// Longest chunk-size line (size and extensions) accepted.
const MAX_LINE: usize = 4096;

/// What went wrong in the coding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The framing is malformed; the reason names the fault.
    Malformed(String),
    /// A chunk would take the body past the limit.
    OverLimit(u64),
    /// The trailer section has more bytes or field lines than the head's
    /// limits leave it (answered 431, as a head over them is).
    TrailersTooLarge(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hexadecimal digits of a chunk size.
    Size { digits: usize, value: u64 },
    /// After the size: extensions up to the CR.
    Line { value: u64 },
    /// The LF that ends a size line.
    SizeLf { value: u64 },
    /// Chunk data still to deliver.
    Data(u64),
    /// The CR after a chunk's data.
    DataCr,
    /// The LF after a chunk's data.
    DataLf,
    /// The trailer section: field lines up to the empty line that ends it.
    Trailer,
    /// The whole body has been decoded.
    Done,
}

/// Decodes one chunked body incrementally.
#[derive(Debug)]
pub(crate) struct ChunkDecoder {
    state: State,
    /// Bytes of the current size line (extensions), or of the trailer
    /// section so far.
    line: Vec<u8>,
    total: u64,
    limit: u64,
    /// What the request's head left of the field limits for the trailer
    /// section.
    trailer_budget: FieldBudget,
    /// The trailer section's fields, once it has been read whole.
    trailers: Option<HeaderMap>,
}

impl ChunkDecoder {
    /// A decoder for a body of at most `limit` bytes whose trailer section
    /// may take at most what `trailer_budget` says.
    pub(crate) fn new(limit: u64, trailer_budget: FieldBudget) -> Self {
        Self {
            state: State::Size {
                digits: 0,
                value: 0,
            },
            line: Vec::new(),
            total: 0,
            limit,
            trailer_budget,
            trailers: None,
        }
    }

    /// The last-chunk and trailer section have been consumed.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The trailer fields, once the body is done and only the first time;
    /// `None` when the section was empty.
    pub(crate) fn take_trailers(&mut self) -> Option<HeaderMap> {
        self.trailers.take().filter(|fields| !fields.is_empty())
    }

    /// Decodes from `input` into `out`; returns the bytes consumed and the
    /// body bytes produced. Stops at the end of the body, leaving what
    /// follows unconsumed.
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, usize), DecodeError> {
        let mut used = 0;
        let mut made = 0;
        while used < input.len() {
            let b = input[used];
            match self.state {
                State::Done => break,
                State::Data(left) => {
                    let room = out.len() - made;
                    if room == 0 {
                        break;
                    }
                    let take = (input.len() - used)
                        .min(room)
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    out[made..made + take].copy_from_slice(&input[used..used + take]);
                    made += take;
                    used += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                    continue;
                }
                State::Size { digits, value } => {
                    if let Some(digit) = hex(b) {
                        if value > (u64::MAX >> 4) {
                            return malformed("chunk size overflows 64 bits");
                        }
                        self.state = State::Size {
                            digits: digits + 1,
                            value: value << 4 | u64::from(digit),
                        };
                    } else if digits == 0 {
                        return malformed(format!("chunk size starts with {}", escape(b)));
                    } else {
                        self.line.clear();
                        self.state = State::Line { value };
                        continue;
                    }
                }
                State::Line { value } => {
                    if b == b'\r' {
                        check_extensions(&self.line)?;
                        self.state = State::SizeLf { value };
                    } else if (b < 0x20 && b != b'\t') || b == 0x7f {
                        return malformed(format!("{} in a chunk size line", escape(b)));
                    } else if self.line.len() >= MAX_LINE {
                        return malformed("chunk extensions too long");
                    } else {
                        self.line.push(b);
                    }
                }
                State::SizeLf { value } => {
                    if b != b'\n' {
                        return malformed(format!("chunk size line ends with CR {}", escape(b)));
                    }
                    if value == 0 {
                        self.line.clear();
                        self.state = State::Trailer;
                    } else {
                        if self.total.saturating_add(value) > self.limit {
                            return Err(DecodeError::OverLimit(self.limit));
                        }
                        self.total += value;
                        self.state = State::Data(value);
                    }
                }
                State::DataCr => {
                    if b != b'\r' {
                        return malformed(format!(
                            "chunk data not followed by CRLF but {}",
                            escape(b)
                        ));
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return malformed(format!("chunk data followed by CR {}", escape(b)));
                    }
                    self.state = State::Size {
                        digits: 0,
                        value: 0,
                    };
                }
                State::Trailer => {
                    // The empty line that ends the section is not a field
                    // line: a head at the very limit still takes an empty
                    // trailer section.
                    if self.line.len() >= self.trailer_budget.bytes.saturating_add(2) {
                        return Err(DecodeError::TrailersTooLarge(
                            "the trailer section and the head exceed max_head",
                        ));
                    }
                    let after_cr = self.line.last() == Some(&b'\r');
                    if after_cr && b != b'\n' {
                        return malformed("bare CR in the trailer section");
                    }
                    if b == b'\n' && !after_cr {
                        return malformed("trailer line ends with a bare LF");
                    }
                    self.line.push(b);
                    if b == b'\n' && (self.line == b"\r\n" || self.line.ends_with(b"\r\n\r\n")) {
                        self.trailers = Some(self.parse_trailers()?);
                        self.line = Vec::new();
                        self.state = State::Done;
                        used += 1;
                        break;
                    }
                }
            }
            used += 1;
        }
        Ok((used, made))
    }
}

impl ChunkDecoder {
    /// The complete trailer section in `line`, parsed as a head's field
    /// lines are, within the field lines the head left.
    fn parse_trailers(&self) -> Result<HeaderMap, DecodeError> {
        match head::field_section(&self.line, self.trailer_budget.fields) {
            Ok(Section::Complete(fields, used)) if used == self.line.len() => Ok(fields),
            Ok(_) => malformed("malformed trailer section"),
            Err(refusal) if refusal.status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Err(
                DecodeError::TrailersTooLarge("the trailer section and the head exceed max_fields"),
            ),
            Err(refusal) => malformed(format!("trailer section: {}", refusal.reason)),
        }
    }
}

fn malformed<T>(reason: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError::Malformed(reason.into()))
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn escape(b: u8) -> String {
    std::ascii::escape_default(b).to_string()
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn skip_bws(line: &[u8], mut i: usize) -> usize {
    while line.get(i).is_some_and(|&b| b == b' ' || b == b'\t') {
        i += 1;
    }
    i
}

fn skip_token(line: &[u8], mut i: usize) -> usize {
    while line.get(i).is_some_and(|&b| is_tchar(b)) {
        i += 1;
    }
    i
}

/// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
fn check_extensions(line: &[u8]) -> Result<(), DecodeError> {
    let mut i = 0;
    loop {
        let before = i;
        i = skip_bws(line, i);
        if i == line.len() {
            // BWS belongs before a `;` only: "5 " and "5;a=b " end in
            // whitespace that no rule of RFC 9112 §7.1.1 produces.
            if i != before {
                return malformed("whitespace at the end of a chunk-size line");
            }
            return Ok(());
        }
        if line[i] != b';' {
            return malformed(format!("unexpected {} after a chunk size", escape(line[i])));
        }
        i = skip_bws(line, i + 1);
        let name_end = skip_token(line, i);
        if name_end == i {
            return malformed("chunk extension without a name");
        }
        i = skip_bws(line, name_end);
        if line.get(i) == Some(&b'=') {
            i = skip_bws(line, i + 1);
            if line.get(i) == Some(&b'"') {
                i += 1;
                loop {
                    match line.get(i) {
                        None => return malformed("unterminated quoted chunk extension"),
                        Some(b'"') => break,
                        Some(b'\\')
                            if line.get(i + 1).is_some_and(|&q| q == b'\t' || q >= 0x20)
                                && line.get(i + 1) != Some(&0x7f) =>
                        {
                            i += 2;
                        }
                        Some(&q) if q == b'\t' || (q >= 0x20 && q != 0x7f && q != b'\\') => i += 1,
                        Some(_) => return malformed("invalid character in a chunk extension"),
                    }
                }
                i += 1;
            } else {
                let value_end = skip_token(line, i);
                if value_end == i {
                    return malformed("chunk extension without a value after '='");
                }
                i = value_end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: FieldBudget = FieldBudget {
        bytes: 1024,
        fields: 4,
    };

    fn decoder() -> ChunkDecoder {
        ChunkDecoder::new(1 << 20, BUDGET)
    }

    fn run_with(
        decoder: &mut ChunkDecoder,
        input: &[u8],
    ) -> Result<(Vec<u8>, usize, bool), DecodeError> {
        let mut out = vec![0; 64];
        let mut body = Vec::new();
        let mut at = 0;
        // Byte by byte, to exercise every state boundary.
        while at < input.len() && !decoder.is_done() {
            let (used, made) = decoder.decode(&input[at..at + 1], &mut out)?;
            body.extend_from_slice(&out[..made]);
            at += used;
            if used == 0 {
                break;
            }
        }
        Ok((body, at, decoder.is_done()))
    }

    fn run(input: &[u8]) -> Result<(Vec<u8>, usize, bool), DecodeError> {
        run_with(&mut decoder(), input)
    }

    #[test]
    fn decodes_and_stops_at_the_end() {
        let mut decoder = decoder();
        let (body, used, done) = run_with(
            &mut decoder,
            b"3;a=b\r\nabc\r\n1 ; c\r\nd\r\n0\r\nX-T: 1\r\n\r\nGET",
        )
        .unwrap_or_default();
        assert_eq!(body, b"abcd");
        assert!(done);
        assert_eq!(used, 35);
        let trailers = decoder.take_trailers().unwrap_or_default();
        assert_eq!(
            trailers.get("x-t").map(http::HeaderValue::as_bytes),
            Some(&b"1"[..])
        );
        assert!(decoder.take_trailers().is_none(), "taken once");
    }

    #[test]
    fn an_empty_trailer_section_gives_none() {
        let mut decoder = decoder();
        let (_, used, done) = run_with(&mut decoder, b"0\r\n\r\nGET").unwrap_or_default();
        assert!(done);
        assert_eq!(used, 5);
        assert!(decoder.take_trailers().is_none());
    }

    #[test]
    fn trailer_fields_keep_their_order_and_repeats_in_one_read() {
        let mut decoder = decoder();
        let mut out = [0u8; 16];
        let input = b"2\r\nok\r\n0\r\nA: 1\r\nB:2 \r\nA: 3\r\n\r\n";
        assert_eq!(decoder.decode(input, &mut out), Ok((input.len(), 2)));
        assert!(decoder.is_done());
        let trailers = decoder.take_trailers().unwrap_or_default();
        let a: Vec<_> = trailers.get_all("a").iter().collect();
        assert_eq!(a, ["1", "3"]);
        assert_eq!(
            trailers.get("b").map(http::HeaderValue::as_bytes),
            Some(&b"2"[..])
        );
    }

    #[test]
    fn refuses_bad_framing() {
        for bad in [
            &b"g\r\n"[..],
            b"3\nabc",
            b"3\r\nabcX",
            b"-1\r\n",
            b"3 x\r\n",
            b"3 \r\nabc\r\n0\r\n\r\n",
            b"3;a=b\t\r\nabc\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"0\r\nbad trailer\r\n\r\n",
            b"0\r\nX: a\r\n folded\r\n\r\n",
            b"0\r\nX : a\r\n\r\n",
            b"0\r\nX: a\nY: b\r\n\r\n",
            b"0\r\nX: a\rb\r\n\r\n",
            b"0\r\nX: a\x01b\r\n\r\n",
            b"0\r\nX: a\0b\r\n\r\n",
            b"0\r\n: a\r\n\r\n",
            b"0\r\n\n",
        ] {
            assert!(
                matches!(run(bad), Err(DecodeError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_trailer_section_is_held_to_what_the_head_left() {
        let long = format!("0\r\nX: {}\r\n\r\n", "a".repeat(1100));
        assert!(matches!(
            run(long.as_bytes()),
            Err(DecodeError::TrailersTooLarge(_))
        ));
        let many = b"0\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n";
        assert!(matches!(run(many), Err(DecodeError::TrailersTooLarge(_))));
        let four = b"0\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n";
        assert!(matches!(run(four), Ok((_, _, true))));
        // A head that used the whole budget still takes an empty section.
        let mut spent = ChunkDecoder::new(16, FieldBudget::default());
        assert!(matches!(
            run_with(&mut spent, b"0\r\n\r\n"),
            Ok((_, 5, true))
        ));
        let mut spent = ChunkDecoder::new(16, FieldBudget::default());
        assert!(run_with(&mut spent, b"0\r\nA: 1\r\n\r\n").is_err());
    }

    #[test]
    fn limit_on_announcement() {
        let mut decoder = ChunkDecoder::new(4, BUDGET);
        let mut out = [0; 8];
        assert_eq!(
            decoder.decode(b"5\r\n", &mut out),
            Err(DecodeError::OverLimit(4))
        );
    }
}
