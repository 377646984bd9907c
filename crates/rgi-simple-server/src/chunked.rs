//! A strict decoder of the chunked transfer coding (RFC 9112 §7.1): CRLF
//! line endings only, hexadecimal sizes checked for overflow, chunk
//! extensions and trailer fields checked against their grammar and
//! discarded, and the body limit applied as soon as a chunk is announced
//! (`[RGI-INPUT-17]`, `[RGI-INPUT-18]`).

/// Longest chunk-size line (size and extensions) and longest trailer
/// section accepted.
const MAX_LINE: usize = 4096;

/// What went wrong in the coding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The framing is malformed; the reason names the fault.
    Malformed(String),
    /// A chunk would take the body past the limit.
    OverLimit(u64),
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
    /// A trailer field line (or the empty line that ends the section).
    Trailer,
    /// The LF that ends a trailer line.
    TrailerLf,
    /// The whole body has been decoded.
    Done,
}

/// Decodes one chunked body incrementally.
#[derive(Debug)]
pub(crate) struct ChunkDecoder {
    state: State,
    /// Bytes of the current size line (extensions) or trailer line.
    line: Vec<u8>,
    trailer_bytes: usize,
    total: u64,
    limit: u64,
}

impl ChunkDecoder {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            state: State::Size {
                digits: 0,
                value: 0,
            },
            line: Vec::new(),
            trailer_bytes: 0,
            total: 0,
            limit,
        }
    }

    /// The last-chunk and trailer section have been consumed.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
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
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > MAX_LINE {
                        return malformed("trailer section too long");
                    }
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    } else if b == b'\n' {
                        return malformed("trailer line ends with a bare LF");
                    } else {
                        self.line.push(b);
                    }
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return malformed("trailer line ends with a bare CR");
                    }
                    if self.line.is_empty() {
                        self.state = State::Done;
                        used += 1;
                        break;
                    }
                    check_trailer_field(&self.line)?;
                    self.line.clear();
                    self.state = State::Trailer;
                }
            }
            used += 1;
        }
        Ok((used, made))
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

/// `field-name ":" OWS field-value OWS`, no obs-fold.
fn check_trailer_field(line: &[u8]) -> Result<(), DecodeError> {
    let name_end = skip_token(line, 0);
    if name_end == 0 || line.get(name_end) != Some(&b':') {
        return malformed("malformed trailer field");
    }
    if line[name_end + 1..]
        .iter()
        .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return malformed("control character in a trailer field");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> Result<(Vec<u8>, usize, bool), DecodeError> {
        let mut decoder = ChunkDecoder::new(1 << 20);
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

    #[test]
    fn decodes_and_stops_at_the_end() {
        let (body, used, done) =
            run(b"3;a=b\r\nabc\r\n1 ; c\r\nd\r\n0\r\nX-T: 1\r\n\r\nGET").unwrap_or_default();
        assert_eq!(body, b"abcd");
        assert!(done);
        assert_eq!(used, 35);
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
        ] {
            assert!(
                matches!(run(bad), Err(DecodeError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn limit_on_announcement() {
        let mut decoder = ChunkDecoder::new(4);
        let mut out = [0; 8];
        assert_eq!(
            decoder.decode(b"5\r\n", &mut out),
            Err(DecodeError::OverLimit(4))
        );
    }
}
