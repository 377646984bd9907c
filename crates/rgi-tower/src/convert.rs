//! The crossings between RGI's request and `http`'s, one function each
//! way: [`environ_from_request`] and [`request_from_environ`]. See the
//! crate documentation's "Crossing between RGI and `http`".

use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body::Body as HttpBody;
use rgi::{BoxError, ConnectionInfo, Environ, EnvironError, ServerInfo};

use crate::input_body::InputBody;
use crate::mount::{MountError, mounted_request};
use crate::request::{
    RequestSource, mark_extended_connect, normalize_authority, remove_decoded_framing, trailer_slot,
};

/// Why an `http::Request` could not become an [`Environ`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// The request names two authorities: a `Host` field other than the
    /// authority of its target (HTTP/1 absolute-form) or its `:authority`
    /// (HTTP/2). A server answers it `400`.
    #[error("the Host field names another authority than the request target")]
    AuthorityMismatch,
    /// The environ refused the request head (a server answers `400`, or
    /// `501` for a CONNECT tunnel).
    #[error(transparent)]
    Environ(#[from] EnvironError),
}

/// The environ of an `http::Request` as hyper (or any HTTP layer that
/// decodes the framing) hands it over, with the rules the services of
/// this crate apply: the `Transfer-Encoding` the layer decoded is removed,
/// repeated equal `Content-Length` values become one, an HTTP/2 request's
/// `:authority` becomes `Host` and its target the `:path`
/// (`[RGI-H2-1]`, `[RGI-H2-2]`), an HTTP/1 absolute-form target's authority
/// replaces `Host` (`[RGI-PATH-9]`), hyper's extended CONNECT protocol
/// becomes [`rgi::ConnectProtocol`], and the body becomes the environ's
/// [`Input`](rgi::Input), read as the application reads it, with the
/// length the body's exact size hint gives. When `server` declares
/// request trailers ([`rgi::Features::request_trailers`]) and the body's
/// framing can carry them, the body's trailers frame fills the input's
/// trailers before its end (`[RGI-TRAILER-1]`).
///
/// Unlike [`AsyncService`](crate::AsyncService) and
/// [`SyncService`](crate::SyncService), which serve whole exchanges, it
/// applies no body limit and no stalled-body time: the caller owns the
/// exchange. The mount point is `server`'s
/// ([`ServerInfo::with_script_name`]).
///
/// # Errors
///
/// [`ConvertError::AuthorityMismatch`] for a request naming two
/// authorities, [`ConvertError::Environ`] for what
/// [`Environ::from_parts`] refuses (an authority-form or CONNECT target, a
/// path outside the mount point, a bad percent-escape, a conflicting
/// `Content-Length`).
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// use std::sync::Arc;
/// use http_body_util::Full;
/// use rgi::{ConnectionInfo, ServerInfo};
///
/// let server = Arc::new(ServerInfo::new("shop.example", 443)?.with_script_name("/shop")?);
/// let connection = Arc::new(ConnectionInfo::new());
/// let request = http::Request::post("/shop/cart%2Fitems?page=2")
///     .header("host", "shop.example")
///     .header("content-length", "3")
///     .body(Full::new(bytes::Bytes::from_static(b"a=1")))?;
///
/// let mut environ = rgi_tower::environ_from_request(request, &server, &connection)?;
/// assert_eq!(environ.script_name(), "/shop");
/// assert_eq!(environ.path_info(), "/cart/items");
/// assert_eq!(environ.raw_path(), "/shop/cart%2Fitems");
/// let mut body = String::new();
/// environ.input_mut().read_to_string(&mut body)?;
/// assert_eq!(body, "a=1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn environ_from_request<B>(
    request: Request<B>,
    server: &Arc<ServerInfo>,
    connection: &Arc<ConnectionInfo>,
) -> Result<Environ, ConvertError>
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    remove_decoded_framing(&mut parts, body.is_end_stream(), body.size_hint().exact());
    mark_extended_connect(&mut parts);
    normalize_authority(&mut parts).map_err(|_| ConvertError::AuthorityMismatch)?;
    let slot = trailer_slot(server.features().request_trailers(), parts.version, &body);
    let input = RequestSource::standalone_input(body, slot);
    Ok(Environ::from_parts(parts, input, server, connection)?)
}

/// The `http::Request` a tower service gets for `environ`: exactly what a
/// [`TowerApplication`](crate::TowerApplication) hands its service (see
/// there), with the mount-relative target, the environ's extensions,
/// [`ScriptName`](crate::ScriptName), [`OriginalUri`](crate::OriginalUri),
/// the `Arc`s of the connection's and the server's descriptions, and the
/// input as an [`InputBody`].
///
/// [`Environ::into_parts`] is the plain inverse of
/// [`Environ::from_parts`]; this is what a service needs besides.
///
/// # Errors
///
/// [`MountError::ScriptNameNotInPath`] for an environ whose mount point is
/// not a prefix of its raw path (a middleware that broke the environ's
/// invariant), [`MountError::InvalidTarget`] if the mount-relative target
/// is not a valid URI.
///
/// # Examples
///
/// ```
/// use http_body_util::BodyExt;
/// use rgi::{Environ, Input};
/// use rgi_tower::{OriginalUri, ScriptName};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let environ = Environ::builder()
///     .method(http::Method::PUT)
///     .uri(http::Uri::from_static("/api/notes/a%2Fb"))
///     .script_name("/api")
///     .input(Input::from_bytes("note"))
///     .build()?;
/// let request = rgi_tower::request_from_environ(environ)?;
/// assert_eq!(request.uri(), "/notes/a%2Fb");
/// assert_eq!(request.extensions().get::<OriginalUri>().map(|o| o.0.path()), Some("/api/notes/a%2Fb"));
/// assert_eq!(request.extensions().get::<ScriptName>().map(|s| s.0.to_string()).as_deref(), Some("/api"));
/// assert_eq!(request.into_body().collect().await?.to_bytes(), "note");
/// # Ok(())
/// # }
/// ```
pub fn request_from_environ(environ: Environ) -> Result<Request<InputBody>, MountError> {
    mounted_request(environ, true)
}
