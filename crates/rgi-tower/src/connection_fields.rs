//! The connection-specific fields of a message (RFC 9110 §7.6.1), which a
//! server writes for itself: the mounted direction takes them out of a
//! tower service's response head, upgraded or not.

use http::HeaderMap;
use http::header::{CONNECTION, HeaderName, TE, TRANSFER_ENCODING, UPGRADE};

/// Removes the connection-specific fields (RFC 9110 §7.6.1), those a
/// `Connection` field names included: the server writes its own.
pub(crate) fn remove_connection_fields(headers: &mut HeaderMap) {
    // Most responses carry none of them: one pass over the names (standard
    // ones compare without hashing) spares the six removals' lookups, about
    // 1,300 instructions a request of a mounted axum hello.
    if !headers.keys().any(is_connection_field) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|option| HeaderName::from_bytes(option.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [CONNECTION, TRANSFER_ENCODING, TE, UPGRADE] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// Whether `name` is one of the fields [`remove_connection_fields`] always
/// removes (`Connection` standing for those it names).
fn is_connection_field(name: &HeaderName) -> bool {
    name == CONNECTION
        || name == TRANSFER_ENCODING
        || name == TE
        || name == UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}
