//! [`Router`]: applications mounted at path prefixes, by method and host.

use std::borrow::Cow;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, StatusCode};
use rgi::{
    Application, Body, BoxError, Environ, FileBody, Hints, InputUse, ResponseHead, StartResponse,
    Startup,
};
use rgi_async::{AsyncApplication, AsyncBody, Step};

/// Why a [`Mount`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The prefix does not start with `/`.
    #[error("a mount prefix starts with '/': {prefix:?}")]
    NotAbsolute {
        /// The prefix given.
        prefix: String,
    },
    /// The prefix has an empty, `.` or `..` segment, which no request
    /// path should be routed by.
    #[error("a mount prefix has no empty, '.' or '..' segment: {prefix:?}")]
    BadSegment {
        /// The prefix given.
        prefix: String,
    },
    /// The host is empty or not a valid `host` field value.
    #[error("not a host to match: {host:?}")]
    BadHost {
        /// The host given.
        host: String,
    },
}

/// Where a [`Router`] serves an application: a path prefix, optionally
/// only some methods, optionally only one host.
///
/// The prefix is written decoded (`/files/a b`, not `/files/a%20b`) and
/// split at `/` into segments; a trailing `/` is ignored, so `/api/` is
/// `/api`, and `/` is the root, which matches every path.
///
/// # Examples
///
/// ```
/// use http::Method;
/// use rgi_middleware::Mount;
///
/// let users = Mount::at("/api/users")?.methods([Method::GET, Method::POST]);
/// let admin = Mount::at("/")?.host("admin.example.com")?;
/// assert!(Mount::at("api").is_err());
/// assert!(Mount::at("/a/../b").is_err());
/// # let _ = (users, admin);
/// # Ok::<(), rgi_middleware::RouteError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    prefix: String,
    segments: Vec<Vec<u8>>,
    methods: Option<Vec<Method>>,
    host: Option<String>,
}

impl Mount {
    /// A mount at `prefix`, for every method and host.
    ///
    /// # Errors
    ///
    /// [`RouteError::NotAbsolute`] when `prefix` does not start with `/`;
    /// [`RouteError::BadSegment`] when it has an empty, `.` or `..`
    /// segment (`//`, `/a/./b`).
    pub fn at(prefix: &str) -> Result<Mount, RouteError> {
        let Some(rest) = prefix.strip_prefix('/') else {
            return Err(RouteError::NotAbsolute {
                prefix: prefix.to_owned(),
            });
        };
        // A trailing `/` is ignored, once, and only after a segment.
        let rest = match rest.strip_suffix('/') {
            Some(stripped) if !stripped.is_empty() => stripped,
            _ => rest,
        };
        let mut segments = Vec::new();
        if !rest.is_empty() {
            for segment in rest.split('/') {
                if segment.is_empty() || segment == "." || segment == ".." {
                    return Err(RouteError::BadSegment {
                        prefix: prefix.to_owned(),
                    });
                }
                segments.push(segment.as_bytes().to_vec());
            }
        }
        Ok(Mount {
            prefix: prefix.to_owned(),
            segments,
            methods: None,
            host: None,
        })
    }

    /// The same mount, for `methods` only. A mount for `GET` serves `HEAD`
    /// too, unless a mount at the same prefix names `HEAD` itself.
    #[must_use]
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = Some(methods.into_iter().collect());
        self
    }

    /// The same mount, for requests to `host` only (compared without case
    /// and without the port).
    ///
    /// # Errors
    ///
    /// [`RouteError::BadHost`] when `host` is empty or cannot be a `host`
    /// field value.
    pub fn host(mut self, host: &str) -> Result<Self, RouteError> {
        if host.is_empty() || HeaderValue::from_str(host).is_err() {
            return Err(RouteError::BadHost {
                host: host.to_owned(),
            });
        }
        self.host = Some(host.to_ascii_lowercase());
        Ok(self)
    }

    fn allows(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(method))
    }
}

/// Applications mounted at path prefixes: a URL map with method dispatch
/// and optional host matching. A router of [`rgi::Application`]s is one;
/// a router of [`rgi_async::AsyncApplication`]s is one. Different
/// application types go behind one router boxed
/// ([`BoxApplication`](crate::BoxApplication),
/// [`BoxAsyncApplication`](crate::BoxAsyncApplication)).
///
/// For each request:
///
/// 1. The mounts whose host matches (or that have none) and whose prefix
///    is made of the leading segments of the request's `path_info` are
///    the candidates; the longest prefix wins (on a tie, a mount with a
///    host goes before one without, then the order of mounting).
///    Segments are those of the raw path, each decoded once (`RGI-PATH-1`,
///    `RGI-PATH-3`): `/api` matches `/api`, `/api/` and `/api/x`, never
///    `/apix`; `/ap%69/x` matches `/api` (the same decoded segment), and
///    `/api%2Fx` does not (an encoded slash is inside its segment,
///    `RGI-PATH-4`).
/// 2. Among the winners, the first that allows the method serves the
///    request; `HEAD` goes to a `GET` mount when no mount allows `HEAD`
///    itself (the application sees `HEAD`, as the spec wants, and the
///    server drops any body). If none allows it: `405 Method Not Allowed`
///    with `Allow` listing what the winners allow.
/// 3. No candidate: `404 Not Found`.
///
/// The application gets the environ with the prefix moved from
/// `path_info` to `script_name` by [`Environ::shift_path`] (`RGI-PATH-7`):
/// a request for `/api/users/7` to a mount at `/api` is seen with
/// `script_name` `/api` and `path_info` `/users/7`; for `/api`, with an
/// empty `path_info`; for `/api/`, with `/`. Nothing is normalised:
/// `..` segments below the prefix are the application's to refuse
/// (`RGI-PATH-6`).
///
/// Its [`Hints`] are the most demanding of all the mounted applications'
/// (`RGI-HINT-8`); start-up runs every application's in mounting order,
/// shut-down in reverse (`RGI-LIFE-4`). When a start-up fails, the
/// applications already started are shut down, in reverse, before the
/// error is returned: the server will call no `shutdown` (`RGI-LIFE-2`).
///
/// # Examples
///
/// ```
/// use http::{Method, StatusCode};
/// use rgi::{Environ, ResponseHead, StartResponse};
/// use rgi_conformance::client::{TestClient, TestRequest};
/// use rgi_middleware::{Mount, Router};
///
/// fn show(environ: Environ, start: &mut StartResponse<'_>) -> Result<String, rgi::BoxError> {
///     start.start(ResponseHead::new(StatusCode::OK))?;
///     Ok(format!("{} {}", environ.script_name(), environ.path_info()))
/// }
/// type Show = fn(Environ, &mut StartResponse<'_>) -> Result<String, rgi::BoxError>;
///
/// let router = Router::new()
///     .mount(Mount::at("/api")?, rgi::from_fn(show as Show))
///     .mount(Mount::at("/api/v2")?.methods([Method::GET]), rgi::from_fn(show as Show));
/// let client = TestClient::new(router);
/// assert_eq!(client.get("/api/users/7")?.text(), "/api /users/7");
/// assert_eq!(client.get("/api/v2/users")?.text(), "/api/v2 /users");
/// assert_eq!(client.get("/apix")?.status, StatusCode::NOT_FOUND);
/// let post = client.request(TestRequest::post("/api/v2/users", "x"))?;
/// assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
/// assert_eq!(post.header("allow"), Some("GET, HEAD"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Router<A> {
    routes: Vec<(Mount, A)>,
}

impl<A> Router<A> {
    /// A router with nothing mounted: every request is a 404.
    #[must_use]
    pub fn new() -> Self {
        Router { routes: Vec::new() }
    }

    /// The same router with `app` served at `mount`.
    #[must_use]
    pub fn mount(mut self, mount: Mount, app: A) -> Self {
        self.routes.push((mount, app));
        self
    }

    /// Finds where `environ` goes.
    fn dispatch(&self, environ: &Environ) -> Dispatch<'_, A> {
        let segments = request_segments(environ);
        let host = request_host(environ);
        // Rank: prefix length, then whether the mount names a host.
        let mut best: Option<(usize, bool)> = None;
        for (mount, _) in &self.routes {
            if let Some(rank) = rank(mount, &segments, host.as_deref()) {
                if best.is_none_or(|b| rank > b) {
                    best = Some(rank);
                }
            }
        }
        let Some((depth, _)) = best else {
            return Dispatch::NotFound;
        };
        // The winners, host-specific mounts first on a tie of length.
        let mut winners: Vec<&(Mount, A)> = self
            .routes
            .iter()
            .filter(|(mount, _)| {
                rank(mount, &segments, host.as_deref()).is_some_and(|(d, _)| d == depth)
            })
            .collect();
        winners.sort_by_key(|(mount, _)| mount.host.is_none());
        let ordered = || winners.iter().copied();
        let method = environ.method();
        if let Some((_, app)) = ordered().find(|(m, _)| m.allows(method)) {
            return Dispatch::Found { app, depth };
        }
        if method == Method::HEAD {
            if let Some((_, app)) = ordered().find(|(m, _)| m.allows(&Method::GET)) {
                return Dispatch::Found { app, depth };
            }
        }
        let mut allowed: Vec<&Method> = Vec::new();
        for (mount, _) in ordered() {
            for method in mount.methods.iter().flatten() {
                if !allowed.contains(&method) {
                    allowed.push(method);
                }
            }
        }
        if allowed.contains(&&Method::GET) && !allowed.contains(&&Method::HEAD) {
            allowed.push(&Method::HEAD);
        }
        let allow = allowed
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Dispatch::NotAllowed(allow)
    }

    /// Calls the application found for `environ`, or answers itself.
    fn call_with<B>(
        &self,
        mut environ: Environ,
        start: &mut StartResponse<'_>,
        call: impl FnOnce(&A, Environ, &mut StartResponse<'_>) -> Result<B, BoxError>,
    ) -> Result<RouterBody<B>, BoxError> {
        let (head, text) = match self.dispatch(&environ) {
            Dispatch::Found { app, depth } => {
                for _ in 0..depth {
                    // Cannot fail: each segment matched a non-empty one.
                    if environ.shift_path().is_none() {
                        break;
                    }
                }
                let body = call(app, environ, start)?;
                return Ok(RouterBody {
                    inner: Some(body),
                    own: None,
                });
            }
            Dispatch::NotFound => own(StatusCode::NOT_FOUND, "not found\n"),
            Dispatch::NotAllowed(allow) => {
                let (mut head, text) = own(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                if let Ok(allow) = HeaderValue::from_str(&allow) {
                    head.headers_mut().insert(ALLOW, allow);
                }
                (head, text)
            }
        };
        start.start(head)?;
        Ok(RouterBody {
            inner: None,
            own: Some(text),
        })
    }
}

impl<A> Default for Router<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Clone> Clone for Router<A> {
    fn clone(&self) -> Self {
        Router {
            routes: self.routes.clone(),
        }
    }
}

impl<A> fmt::Debug for Router<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|(mount, _)| mount))
            .finish()
    }
}

enum Dispatch<'a, A> {
    Found { app: &'a A, depth: usize },
    NotFound,
    NotAllowed(String),
}

/// The router's own answer: `status`, `text/plain`, with its length.
fn own(status: StatusCode, text: &'static str) -> (ResponseHead, Bytes) {
    let head = ResponseHead::new(status)
        .with_header(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )
        .with_header(CONTENT_LENGTH, HeaderValue::from(text.len()));
    (head, Bytes::from_static(text.as_bytes()))
}

/// How well `mount` matches: its depth and whether it names the host, or
/// `None`.
fn rank(mount: &Mount, segments: &[Cow<'_, [u8]>], host: Option<&str>) -> Option<(usize, bool)> {
    if let Some(wanted) = &mount.host {
        if host != Some(wanted.as_str()) {
            return None;
        }
    }
    if mount.segments.len() > segments.len() {
        return None;
    }
    let matches = mount
        .segments
        .iter()
        .zip(segments)
        .all(|(m, s)| m.as_slice() == s.as_ref());
    matches.then_some((mount.segments.len(), mount.host.is_some()))
}

/// The request's host, lower-case and without the port: the `host`
/// field, else the server's name.
fn request_host(environ: &Environ) -> Option<String> {
    let host = match environ.headers().get(HOST) {
        Some(value) => value.to_str().ok()?,
        None => environ.server_name(),
    };
    let name = if host.starts_with('[') {
        // An IPv6 literal: up to and with its closing bracket.
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    Some(name.to_ascii_lowercase())
}

/// The segments of the request's `path_info`, split on the raw path and
/// each decoded once; a trailing `/` gives a last, empty segment.
fn request_segments(environ: &Environ) -> Vec<Cow<'_, [u8]>> {
    let raw = raw_path_info(environ);
    match raw.strip_prefix('/') {
        Some(rest) => rest.split('/').map(decode).collect(),
        // Empty, or `*`: no segment.
        None => Vec::new(),
    }
}

/// The raw form of `path_info`: the raw path after the raw segments whose
/// decoding is `script_name`.
fn raw_path_info(environ: &Environ) -> &str {
    let raw = environ.raw_path();
    let mounted = environ.script_name().len();
    if mounted == 0 {
        return raw;
    }
    let mut decoded = 0;
    let mut at = 0;
    while decoded < mounted {
        // The next raw segment: its `/` and up to the next `/`.
        let end = raw[at + 1..].find('/').map_or(raw.len(), |i| at + 1 + i);
        decoded += decoded_len(&raw[at..end]);
        at = end;
        if at >= raw.len() {
            break;
        }
    }
    if decoded == mounted {
        &raw[at..]
    } else {
        // A script name that is not a decoded prefix of the raw path
        // breaks RGI-PATH-1; route nothing below it rather than guess.
        ""
    }
}

/// How many bytes `raw` decodes to: each `%HH` is one.
fn decoded_len(raw: &str) -> usize {
    let bytes = raw.as_bytes();
    let mut len = 0;
    let mut i = 0;
    while i < bytes.len() {
        i += if escape_at(bytes, i).is_some() { 3 } else { 1 };
        len += 1;
    }
    len
}

/// The byte a `%HH` at `i` encodes.
fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    if bytes.get(i) != Some(&b'%') {
        return None;
    }
    let hex = |b: u8| (b as char).to_digit(16);
    let high = hex(*bytes.get(i + 1)?)?;
    let low = hex(*bytes.get(i + 2)?)?;
    u8::try_from(high * 16 + low).ok()
}

/// One raw segment, decoded once; borrowed when it has no escape.
fn decode(raw: &str) -> Cow<'_, [u8]> {
    let bytes = raw.as_bytes();
    if !bytes.contains(&b'%') {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match escape_at(bytes, i) {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// The most demanding of `hints` (`RGI-HINT-8`), starting from a router
/// that reads nothing and never blocks.
fn combined(hints: impl Iterator<Item = Hints>) -> Hints {
    hints.fold(
        Hints::default()
            .with_input(InputUse::None)
            .with_may_block(false),
        |acc, h| {
            let input = match (acc.input, h.input) {
                (InputUse::Streaming, _) | (_, InputUse::Streaming) => InputUse::Streaming,
                (InputUse::Whole, _) | (_, InputUse::Whole) => InputUse::Whole,
                _ => InputUse::None,
            };
            acc.with_input(input)
                .with_may_block(acc.may_block || h.may_block)
        },
    )
}

impl<A: Application> Application for Router<A> {
    type Body = RouterBody<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        self.call_with(environ, start, |app, environ, start| {
            app.call(environ, start)
        })
    }

    fn hints(&self) -> Hints {
        combined(self.routes.iter().map(|(_, app)| app.hints()))
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        start_all(
            &self.routes,
            |app| app.startup(startup),
            Application::shutdown,
        )
    }

    fn shutdown(&self) {
        self.routes.iter().rev().for_each(|(_, app)| app.shutdown());
    }
}

/// Starts every application in order; when one fails, shuts down those
/// already started, in reverse, since the server calls no `shutdown`
/// after a failed start-up (`RGI-LIFE-2`), and returns its error.
fn start_all<A>(
    routes: &[(Mount, A)],
    mut up: impl FnMut(&A) -> Result<(), BoxError>,
    down: impl Fn(&A),
) -> Result<(), BoxError> {
    for (started, (_, app)) in routes.iter().enumerate() {
        if let Err(err) = up(app) {
            routes[..started]
                .iter()
                .rev()
                .for_each(|(_, app)| down(app));
            return Err(err);
        }
    }
    Ok(())
}

impl<A: AsyncApplication> AsyncApplication for Router<A> {
    type Body = RouterBody<A::Body>;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<Self::Body, BoxError> {
        self.call_with(environ, start, |app, environ, start| {
            app.call(environ, start)
        })
    }

    fn startup(&self, startup: &mut Startup<'_>) -> Result<(), BoxError> {
        start_all(
            &self.routes,
            |app| app.startup(startup),
            AsyncApplication::shutdown,
        )
    }

    fn shutdown(&self) {
        self.routes.iter().rev().for_each(|(_, app)| app.shutdown());
    }
}

pin_project_lite::pin_project! {
    /// The body of a [`Router`]: the chosen application's, or the
    /// router's own 404 or 405; for either stack.
    pub struct RouterBody<B> {
        #[pin]
        inner: Option<B>,
        own: Option<Bytes>,
    }
}

impl<B> fmt::Debug for RouterBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterBody")
            .field("routed", &self.inner.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for RouterBody<B> {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        match &mut self.inner {
            Some(body) => body.next_chunk(start),
            None => self.own.take().map(Ok),
        }
    }

    fn size_hint(&self) -> Option<u64> {
        match &self.inner {
            Some(body) => body.size_hint(),
            None => Some(self.own.as_ref().map_or(0, |t| t.len() as u64)),
        }
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        self.inner.as_mut()?.file()
    }
}

impl<B: AsyncBody> AsyncBody for RouterBody<B> {
    fn poll_step(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.project();
        match this.inner.as_pin_mut() {
            Some(body) => body.poll_step(cx, start),
            None => Poll::Ready(this.own.take().map(|t| Ok(Step::Chunk(t)))),
        }
    }

    fn size_hint(&self) -> Option<u64> {
        match &self.inner {
            Some(body) => body.size_hint(),
            None => Some(self.own.as_ref().map_or(0, |t| t.len() as u64)),
        }
    }
}
