#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Properties of the path split over arbitrary targets: whether a side
//! shares the target's bytes or was decoded, the two sides always
//! concatenate to the decoded path, the split falls on a raw segment
//! boundary, and `shift_path` keeps both (RGI-PATH-1 to RGI-PATH-4,
//! RGI-PATH-7).

use std::sync::Arc;

use bytes::Bytes;
use http::Uri;
use proptest::prelude::*;
use rgi::{ConnectionInfo, Environ, EnvironError, Input, ServerInfo};

/// The reference decoding: every `%HH` to its byte, anything else kept.
fn reference_decode(raw: &str) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = raw.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    Some(decoded)
}

/// Raw segments made of plain characters, escapes (of `/` too) and broken
/// escapes.
fn raw_segment() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("a".to_owned()),
            Just("Z".to_owned()),
            Just("~".to_owned()),
            Just("%2F".to_owned()),
            Just("%2f".to_owned()),
            Just("%20".to_owned()),
            Just("%C3%A9".to_owned()),
            Just("%FF".to_owned()),
            Just("%".to_owned()),
            Just("%4".to_owned()),
        ],
        0..4,
    )
    .prop_map(|pieces| pieces.concat())
}

fn raw_path() -> impl Strategy<Value = (Vec<String>, usize)> {
    prop::collection::vec(raw_segment(), 1..5).prop_flat_map(|segments| {
        let count = segments.len();
        (Just(segments), 0..=count)
    })
}

fn build(target: &str, mount: Bytes) -> Result<Environ, EnvironError> {
    let uri: Uri = target.parse().unwrap();
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.uri = uri;
    let server = ServerInfo::new("example.org", 80)?.with_script_name(mount)?;
    Environ::from_parts(
        parts,
        Input::empty(),
        &Arc::new(server),
        &Arc::new(ConnectionInfo::new()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_split_matches_the_reference_decoding((segments, mounted) in raw_path()) {
        let raw = segments.iter().map(|segment| format!("/{segment}")).collect::<String>();
        let raw_mount: String = segments[..mounted].iter().map(|segment| format!("/{segment}")).collect();
        let decoded = reference_decode(&raw);
        let mount = reference_decode(&raw_mount).unwrap_or_default();
        // A mount point ending in `/` (an empty last segment) is not a valid
        // mount; leave such cases to the checks of `ServerInfo`.
        prop_assume!(mount.is_empty() || !mount.ends_with(b"/"));

        let result = build(&raw, Bytes::from(mount.clone()));
        match decoded {
            None => {
                let is_invalid_encoding =
                    matches!(result, Err(EnvironError::InvalidPercentEncoding { .. }));
                prop_assert!(is_invalid_encoding, "{raw}: {result:?}");
            }
            Some(decoded) => {
                let mut environ = result.unwrap();
                prop_assert_eq!(environ.script_name().as_bytes(), &mount[..]);
                let mut joined = environ.script_name().as_bytes().to_vec();
                joined.extend_from_slice(environ.path_info().as_bytes());
                prop_assert_eq!(&joined, &decoded);

                // Shifting never changes the whole, and each step moves one
                // whole raw segment.
                let mut shifted = mounted;
                while let Some(segment) = environ.shift_path() {
                    let expected = reference_decode(&format!("/{}", segments[shifted])).unwrap();
                    prop_assert_eq!(segment.as_bytes(), &expected[..]);
                    shifted += 1;
                    let mut joined = environ.script_name().as_bytes().to_vec();
                    joined.extend_from_slice(environ.path_info().as_bytes());
                    prop_assert_eq!(&joined, &decoded);
                }
                // It stops at the end, or before a segment that would leave
                // `script_name` ending in `/` (empty, or a decoded `/` last).
                let stopped_early = segments.get(shifted).is_some_and(|segment| {
                    reference_decode(&format!("/{segment}")).unwrap().ends_with(b"/")
                });
                prop_assert!(shifted == segments.len() || stopped_early);
            }
        }
    }
}
