//! Trailer fields, both ways (spec/rgi.md, "Trailers"): the slot through
//! which a server hands a request's trailer section to its [`Input`](crate::Input),
//! the fields no trailer section may carry, and what goes wrong sending or
//! reading them.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use http::{HeaderMap, HeaderName};

/// Whether a field may not appear in a trailer section (RFC 9110 §6.5.1):
/// message framing, routing, request modifiers, authentication, response
/// control data, content processing, and the `Trailer` field itself.
///
/// A server discards these from a request's trailers
/// ([`TrailerSlot::fill`] does it), and
/// [`StartResponse::send_trailers`](crate::StartResponse::send_trailers)
/// refuses them (`[RGI-TRAILER-1]`, `[RGI-TRAILER-4]`).
///
/// # Examples
///
/// ```
/// use http::header;
///
/// assert!(rgi::is_forbidden_trailer(&header::CONTENT_LENGTH));
/// assert!(rgi::is_forbidden_trailer(&header::SET_COOKIE));
/// assert!(!rgi::is_forbidden_trailer(&http::HeaderName::from_static("grpc-status")));
/// assert!(!rgi::is_forbidden_trailer(&header::ETAG));
/// ```
#[must_use]
pub fn is_forbidden_trailer(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        // Framing and connection management.
        "content-length" | "transfer-encoding" | "connection" | "keep-alive"
            | "proxy-connection" | "te" | "trailer" | "upgrade"
            // Routing.
            | "host"
            // Request modifiers: controls and conditionals.
            | "cache-control" | "expect" | "max-forwards" | "pragma" | "range"
            | "if-match" | "if-none-match" | "if-modified-since" | "if-unmodified-since"
            | "if-range"
            // Authentication and cookies.
            | "authorization" | "proxy-authorization" | "www-authenticate"
            | "proxy-authenticate" | "cookie" | "set-cookie"
            // Response control data.
            | "age" | "date" | "expires" | "location" | "retry-after" | "vary" | "warning"
            // Content processing.
            | "content-encoding" | "content-type" | "content-range"
    )
}

/// Where a server puts a request's trailer section for its
/// [`Input`](crate::Input) to hand to the application.
///
/// The server creates one per request whose body may carry trailers
/// (chunked HTTP/1.1, HTTP/2), attaches a clone with
/// [`Input::with_trailers`](crate::Input::with_trailers), and
/// [`fill`](Self::fill)s it when its de-framer reaches the trailer section,
/// *before* its source reports the end of the body: an application that
/// has read the body to its end then finds the trailers there
/// (`[RGI-TRAILER-1]`). A middleware that replaces the input keeps them with
/// [`filled`](Self::filled) (`[RGI-TRAILER-2]`).
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// use http::{HeaderMap, HeaderValue};
/// use rgi::{Input, TrailerSlot};
///
/// let slot = TrailerSlot::new();
/// let mut input = Input::new(&b"hello"[..], None).with_trailers(slot.clone());
///
/// // The server's de-chunker reached the trailer section.
/// let mut fields = HeaderMap::new();
/// fields.insert("checksum", HeaderValue::from_static("5d41402a"));
/// fields.insert("content-length", HeaderValue::from_static("5")); // forbidden: dropped
/// slot.fill(fields);
///
/// let mut body = Vec::new();
/// input.read_to_end(&mut body)?;
/// let trailers = input.trailers()?.expect("the client sent trailers");
/// assert_eq!(trailers["checksum"], "5d41402a");
/// assert!(!trailers.contains_key("content-length"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct TrailerSlot {
    fields: Arc<Mutex<Option<HeaderMap>>>,
}

impl TrailerSlot {
    /// An empty slot, for the server's de-framer to fill.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A slot that holds `fields` already: for an input built after the
    /// body was read, such as a pre-read one (`[RGI-TRAILER-2]`).
    #[must_use]
    pub fn filled(fields: HeaderMap) -> Self {
        let slot = Self::new();
        slot.fill(fields);
        slot
    }

    /// Stores the trailer section, without the fields no trailer may carry
    /// ([`is_forbidden_trailer`]); a second call replaces the first.
    pub fn fill(&self, mut fields: HeaderMap) {
        let forbidden: Vec<HeaderName> = fields
            .keys()
            .filter(|name| is_forbidden_trailer(name))
            .cloned()
            .collect();
        for name in forbidden {
            fields.remove(name);
        }
        *self.lock() = Some(fields);
    }

    /// Whether the slot was filled.
    #[must_use]
    pub fn is_filled(&self) -> bool {
        self.lock().is_some()
    }

    pub(crate) fn get(&self) -> Option<HeaderMap> {
        self.lock().clone()
    }

    pub(crate) fn take(&self) -> Option<HeaderMap> {
        self.lock().take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<HeaderMap>> {
        // A panic while a HeaderMap was being stored leaves no broken
        // invariant worth poisoning for.
        self.fields.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for TrailerSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrailerSlot")
            .field("fields", &*self.lock())
            .finish()
    }
}

/// Reading or sending trailer fields failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrailersError {
    /// The request's trailers were asked for before its body was read to
    /// its end (`[RGI-TRAILER-3]`).
    #[error("trailers asked for after {read} body bytes, before the body's end")]
    BodyNotFinished {
        /// Body bytes delivered so far.
        read: u64,
    },
    /// A response trailer field that no trailer section may carry
    /// (`[RGI-TRAILER-4]`, RFC 9110 §6.5.1).
    #[error("field {name} is not allowed in a trailer section")]
    Forbidden {
        /// The refused field.
        name: HeaderName,
    },
    /// The response's trailers were given already (`[RGI-TRAILER-4]`).
    #[error("the response's trailers were given already")]
    AlreadySet,
}
