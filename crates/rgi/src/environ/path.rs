//! Percent-decoding of the request path and its split into `script_name` and
//! `path_info`.
//!
//! Everything here works on *raw* segments (the path as received, split at
//! literal `/`) and decodes each segment separately. A `%2F` therefore never
//! becomes a segment boundary, and the decoded halves always concatenate to
//! the decoded path.

/// Why a raw path could not be split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SplitError {
    /// A `%` not followed by two hex digits.
    InvalidPercentEncoding,
    /// The mount prefix is not made of the path's leading whole segments.
    ScriptNameMismatch,
}

/// A raw path split at a segment boundary, both halves decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Split {
    pub(super) script_name: Vec<u8>,
    pub(super) path_info: Vec<u8>,
    /// Where `path_info` begins in the raw path; kept so that later splits
    /// (`Environ::shift_path`) still happen on raw segment boundaries.
    pub(super) raw_path_info_start: usize,
}

/// Percent-decodes `raw`, or `None` if a `%` is not followed by two hex digits.
pub(super) fn decode(raw: &str) -> Option<Vec<u8>> {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut rest = raw.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        if byte == b'%' {
            let [high, low, after_escape @ ..] = after else {
                return None;
            };
            decoded.push(hex_value(*high)? << 4 | hex_value(*low)?);
            rest = after_escape;
        } else {
            decoded.push(byte);
            rest = after;
        }
    }
    Some(decoded)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Splits an origin-form `raw_path` (starting with `/`) so that the decoded
/// head equals `script_name` (already decoded, already validated as empty or
/// `/…` without a trailing `/`).
///
/// The whole path is decoded first so that an invalid escape is reported as
/// such even when the prefix would not have matched either.
pub(super) fn split(raw_path: &str, script_name: &[u8]) -> Result<Split, SplitError> {
    let decoded = decode(raw_path).ok_or(SplitError::InvalidPercentEncoding)?;
    let mut raw_consumed = 0;
    let mut decoded_consumed = 0;
    while decoded_consumed < script_name.len() {
        let segment =
            first_raw_segment(&raw_path[raw_consumed..]).ok_or(SplitError::ScriptNameMismatch)?;
        let segment_decoded_len = decode(segment)
            .ok_or(SplitError::InvalidPercentEncoding)?
            .len();
        raw_consumed += segment.len();
        decoded_consumed += segment_decoded_len;
    }
    // Whole segments overshooting the prefix means the prefix ends inside a
    // segment ("/app" against "/app%2Fx" or "/apple").
    if decoded_consumed != script_name.len() || decoded[..decoded_consumed] != *script_name {
        return Err(SplitError::ScriptNameMismatch);
    }
    let path_info = decoded[decoded_consumed..].to_vec();
    let mut script = decoded;
    script.truncate(decoded_consumed);
    Ok(Split {
        script_name: script,
        path_info,
        raw_path_info_start: raw_consumed,
    })
}

/// The first raw segment of `raw` including its leading `/` (`"/a"` of
/// `"/a/b"`), or `None` if `raw` does not start with `/`.
pub(super) fn first_raw_segment(raw: &str) -> Option<&str> {
    let after_slash = raw.strip_prefix('/')?;
    let end = after_slash.find('/').map_or(raw.len(), |index| index + 1);
    Some(&raw[..end])
}

/// Appends `raw_path` to `url` in a canonical percent-encoding: every escape is
/// decoded and the byte re-encoded only if it is not a plain path character,
/// so the result denotes the same decoded segments (an escaped `/` stays
/// escaped) with consistent escaping.
pub(super) fn push_encoded_path(url: &mut String, raw_path: &str) {
    for (index, segment) in raw_path.split('/').enumerate() {
        if index > 0 {
            url.push('/');
        }
        // An undecodable segment cannot occur in a built `Environ`; keep it
        // verbatim rather than fail URL reconstruction.
        match decode(segment) {
            Some(bytes) => push_encoded_segment(url, &bytes),
            None => url.push_str(segment),
        }
    }
}

fn push_encoded_segment(url: &mut String, segment: &[u8]) {
    const HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in segment {
        if is_path_char(byte) {
            url.push(char::from(byte));
        } else {
            url.push('%');
            url.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
            url.push(char::from(HEX_DIGITS[usize::from(byte & 0x0F)]));
        }
    }
}

/// RFC 3986 `pchar` minus `%` (which always starts an escape).
fn is_path_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_in_either_case() {
        assert_eq!(
            decode("/a%20b%2f%2F%c3%A9"),
            Some(b"/a b//\xc3\xa9".to_vec())
        );
    }

    #[test]
    fn rejects_incomplete_or_non_hex_escapes() {
        for raw in ["/%", "/%2", "/%zz", "/%2g", "/a%"] {
            assert_eq!(decode(raw), None, "{raw}");
        }
    }

    #[test]
    fn splits_on_whole_decoded_segments() {
        let split = split("/my%20app/x", b"/my app");
        assert_eq!(
            split,
            Ok(Split {
                script_name: b"/my app".to_vec(),
                path_info: b"/x".to_vec(),
                raw_path_info_start: 9,
            })
        );
    }

    #[test]
    fn encoded_slash_is_not_a_boundary() {
        assert_eq!(
            split("/app%2Fx", b"/app"),
            Err(SplitError::ScriptNameMismatch)
        );
        assert_eq!(
            split("/apple", b"/app"),
            Err(SplitError::ScriptNameMismatch)
        );
    }

    #[test]
    fn canonical_encoding_keeps_escaped_slashes() {
        let mut url = String::new();
        push_encoded_path(&mut url, "/a%2fb/c d%7e/%C3%A9");
        assert_eq!(url, "/a%2Fb/c%20d~/%C3%A9");
    }
}
