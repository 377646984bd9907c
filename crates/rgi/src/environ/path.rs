//! Percent-decoding of the request path and its split into `script_name` and
//! `path_info`.
//!
//! Everything here works on *raw* segments (the path as received, split at
//! literal `/`) and decodes each segment separately. A `%2F` therefore never
//! becomes a segment boundary, and the decoded halves always concatenate to
//! the decoded path.

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

/// Where the first escape of `raw` starts (`raw.len()` when there is
/// none), or `None` if some `%` does not start a valid escape. One scan, no
/// allocation: it tells both whether the path is valid and which parts of it
/// decode to themselves.
pub(super) fn first_escape(raw: &str) -> Option<usize> {
    let bytes = raw.as_bytes();
    let first = bytes
        .iter()
        .position(|&byte| byte == b'%')
        .unwrap_or(bytes.len());
    let mut index = first;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let &[high, low] = bytes.get(index + 1..index + 3)? else {
                return None;
            };
            hex_value(high)?;
            hex_value(low)?;
            index += 3;
        } else {
            index += 1;
        }
    }
    Some(first)
}

/// The decoded bytes of an already validated `raw`, one at a time.
pub(super) fn decoded_bytes(raw: &str) -> impl Iterator<Item = u8> + '_ {
    let mut rest = raw.as_bytes();
    std::iter::from_fn(move || {
        let (&byte, after) = rest.split_first()?;
        if byte == b'%' {
            if let [high, low, after_escape @ ..] = after {
                if let (Some(high), Some(low)) = (hex_value(*high), hex_value(*low)) {
                    rest = after_escape;
                    return Some(high << 4 | low);
                }
            }
        }
        rest = after;
        Some(byte)
    })
}

/// Decodes an already validated `raw` into a vector of exactly its decoded
/// length, so that turning it into `Bytes` needs no second allocation.
pub(super) fn decode_valid(raw: &str) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(decoded_len(raw));
    decoded.extend(decoded_bytes(raw));
    decoded
}

/// The decoded length of an already validated `raw`.
pub(super) fn decoded_len(raw: &str) -> usize {
    raw.len() - 2 * raw.bytes().filter(|&byte| byte == b'%').count()
}

/// Splits an origin-form `raw_path` (starting with `/`, already checked with
/// [`first_escape`]) so that the decoded head equals `script_name`
/// (already decoded, already validated as empty or `/…` without a trailing
/// `/`), and returns where the remainder starts in the raw path, or `None`
/// when the prefix is not made of whole leading segments. Nothing is
/// allocated: the decoded segments are compared byte by byte.
pub(super) fn split(raw_path: &str, script_name: &[u8]) -> Option<usize> {
    let mut raw_consumed = 0;
    let mut wanted = script_name;
    while !wanted.is_empty() {
        let segment = first_raw_segment(raw_path.get(raw_consumed..)?)?;
        // Whole segments overshooting the prefix means the prefix ends
        // inside a segment ("/app" against "/app%2Fx" or "/apple").
        let (expected, after) = wanted.split_at_checked(decoded_len(segment))?;
        if !decoded_bytes(segment).eq(expected.iter().copied()) {
            return None;
        }
        raw_consumed += segment.len();
        wanted = after;
    }
    Some(raw_consumed)
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
        assert_eq!(split("/my%20app/x", b"/my app"), Some(9));
        assert_eq!(split("/a/b/c", b"/a/b"), Some(4));
        assert_eq!(split("/a/b", b""), Some(0));
    }

    #[test]
    fn validates_and_measures_without_decoding() {
        assert_eq!(first_escape("/a%20b%2f"), Some(2));
        assert_eq!(first_escape("/plain"), Some(6));
        for raw in ["/%", "/%2", "/%zz", "/%2g", "/a%", "/%41%"] {
            assert_eq!(first_escape(raw), None, "{raw}");
        }
        assert_eq!(decoded_len("/a%20b%2f"), 5);
        assert_eq!(
            decoded_bytes("/a%20b%2f").collect::<Vec<_>>(),
            decode("/a%20b%2f").unwrap()
        );
    }

    #[test]
    fn encoded_slash_is_not_a_boundary() {
        assert_eq!(split("/app%2Fx", b"/app"), None);
        assert_eq!(split("/apple", b"/app"), None);
    }

    #[test]
    fn canonical_encoding_keeps_escaped_slashes() {
        let mut url = String::new();
        push_encoded_path(&mut url, "/a%2fb/c d%7e/%C3%A9");
        assert_eq!(url, "/a%2Fb/c%20d~/%C3%A9");
    }
}
