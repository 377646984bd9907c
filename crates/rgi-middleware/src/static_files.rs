//! [`ServeDir`]: the files of a directory, through RGI's file body.

use std::fs::{File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, ALLOW, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE,
    LAST_MODIFIED, LOCATION, RANGE, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rgi::{
    Application, Body, BoxError, Environ, FileBody, Hints, InputUse, ResponseHead, StartResponse,
};
use rgi_async::{AsyncApplication, AsyncBody, Step, SyncSwitch};

/// Why a [`ServeDir`] could not be made, or a file not be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeDirError {
    /// The root is not a directory (or cannot be resolved).
    #[error("static files root {root:?} is not a directory")]
    NotADirectory {
        /// The root as given.
        root: PathBuf,
    },
    /// Resolving the root, or opening or reading a file failed for a
    /// reason other than absence or permissions (those become 404 and
    /// 403).
    #[error("static files: {path:?}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

/// Serves the files under a directory: an [`rgi::Application`] and an
/// [`rgi_async::AsyncApplication`].
///
/// `path_info` names the file (so a router mounting it at `/static` hands
/// it the rest). What it does, per request:
///
/// - **Methods**: `GET` and `HEAD`; anything else is `405` with
///   `allow: GET, HEAD`. `HEAD` gets the head `GET` would, without a body.
/// - **The root is a wall**: a `..` segment, a NUL byte or a backslash in
///   a segment, an encoded `/`, `\` or NUL (`%2F`, `%5C`, `%00`) anywhere in
///   the target, or a path that is not UTF-8 is `404`; a path that leaves
///   the root through a symbolic link is `404` unless
///   [`follow_symlinks_outside`](Self::follow_symlinks_outside) says
///   otherwise (links that stay inside the root are followed). The check
///   resolves the path and the file opened is the resolved one; a root
///   in which someone untrusted can create links while it is served is
///   not defended (between the check and the open a component could be
///   swapped for a link).
/// - **Directories**: with an index file (`index.html` by default),
///   `/dir/` serves `/dir/index.html` and `/dir` is a `307` to `/dir/`
///   (query kept); without one, `404`.
/// - **Content-Type** by extension from a small built-in table (text types
///   with `charset=utf-8`), `application/octet-stream` otherwise.
/// - **Validators**: `last-modified` (IMF-fixdate, whole seconds) and a
///   strong `etag` made of the length and the modification time (and the
///   coding of a precompressed variant).
/// - **Conditional requests** in the order of RFC 9110 §13.2.2:
///   `If-Match` (strong comparison) or else `If-Unmodified-Since` fail with
///   `412`; `If-None-Match` (weak comparison) or else `If-Modified-Since`
///   give `304` to `GET` and `HEAD` (`412` to other methods, which are
///   refused anyway). Unparsable dates are ignored, as RFC 9110 says.
/// - **Range** on `GET`: one `bytes` range (`a-b`, `a-`, `-n`) is `206`
///   with `content-range`; an unsatisfiable one is `416` with
///   `content-range: bytes */len`; a syntactically invalid one, another
///   unit, or an `If-Range` that does not match (strong etag, or the exact
///   date) is ignored and the whole file is sent. **Several ranges are not
///   served as `multipart/byteranges`**: the whole file is sent with `200`,
///   which RFC 9110 §14.2 allows.
/// - **Precompressed siblings** (off by default): with
///   [`precompressed_br`](Self::precompressed_br) /
///   [`precompressed_gzip`](Self::precompressed_gzip), `a.js` is served
///   from `a.js.br` or `a.js.gz` when the request's `Accept-Encoding`
///   accepts the coding (q-values honoured, `br` first on a tie) and the
///   sibling exists, with `content-encoding` and the type of `a.js`; every
///   response about a file then has `vary: accept-encoding`.
///
/// # Where the bytes go: `sendfile` and not
///
/// The body is an [`rgi::FileBody`] (`RGI-FILE-*`): a server that can
/// send a file by platform transfer asks [`Body::file`] and does.
/// `rgi-simple-server` does, on its synchronous path: a response framed
/// by `content-length` goes out with `sendfile(2)` from the file straight
/// to the socket, never through user space (`RGI-FILE-3`; that server has
/// no TLS). Through hyper (`rgi-server`, and `rgi-tower`) it cannot: hyper
/// takes the body as a stream of buffers, so the file is read chunk by
/// chunk (after the switch, on a worker thread) and copied; that is the
/// portable fallback the file body provides. A middleware in front keeps
/// `sendfile` only if it passes the body through
/// ([`BodyAccess::PassThrough`](crate::BodyAccess), `RGI-MW-8`):
/// [`AccessLog`](crate::AccessLog) does, a compressor cannot.
///
/// # Against tower-http's `ServeDir`
///
/// `tests/static_files_vs_tower_http.rs` serves one directory with both on
/// the same requests. They agree on the status and on `content-length`,
/// `content-range`, `content-encoding`, `last-modified`, `location`,
/// `vary`, `allow` and the presence of `etag` for plain files, index
/// files, the `307` to a directory's slash, `404`s and `..` traversal,
/// `405`, single ranges (`206`, `416`), `If-Modified-Since`,
/// `If-Unmodified-Since`, `If-None-Match`, `If-Match`, and precompressed
/// `br` / `gzip` siblings by q-value. The differences:
///
/// - Several ranges (`bytes=0-1,3-4`): tower-http answers `416`; this
///   crate ignores the field and sends the whole file with `200` (neither
///   sends `multipart/byteranges`).
/// - A syntactically invalid range (`bytes=x-y`): tower-http answers
///   `416`; this crate ignores it, as RFC 9110 §14.2 says a recipient
///   should.
/// - Text types carry `; charset=utf-8` here (the media type itself is the
///   same on the types compared).
/// - An empty error body (`404`, `307`, `416`) has `content-length: 0`
///   here, declared by the application; tower-http leaves it to hyper's
///   framing.
/// - The entity tags are spelt differently (both strong, both from the
///   length and the modification time); `allow` is `GET, HEAD` here,
///   `GET,HEAD` there.
///
/// # The asynchronous stack
///
/// Opening and reading files blocks, and an asynchronous application must
/// not block its event loop (`RGIA-OFFLOAD-10`). As an
/// [`AsyncApplication`], `call` does no file-system work at all: its body's
/// first step is [`Step::Switch`], and the continuation, on a worker
/// thread, serves the request exactly as the synchronous application does
/// (its head included) and returns the file body, which the server pulls
/// on worker threads too (`RGIA-SWITCH-3`). Every asynchronous server
/// supports the switch (`RGIA-CAP-4`).
///
/// # Examples
///
/// ```
/// use rgi_conformance::client::TestClient;
/// use rgi_middleware::ServeDir;
///
/// let dir = std::env::temp_dir().join(format!("serve-dir-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// std::fs::write(dir.join("hello.txt"), "hello")?;
///
/// let client = TestClient::new(ServeDir::new(&dir)?);
/// let response = client.get("/hello.txt")?;
/// response.assert_ok_and_valid();
/// assert_eq!(response.text(), "hello");
/// assert_eq!(response.header("content-type"), Some("text/plain; charset=utf-8"));
/// assert_eq!(client.get("/../etc/passwd")?.status, 404);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ServeDir {
    config: Arc<Config>,
}

#[derive(Clone, Debug)]
struct Config {
    root: PathBuf,
    index: Option<String>,
    br: bool,
    gzip: bool,
    outside: bool,
    chunk_size: usize,
}

impl ServeDir {
    /// Serves the files under `root`, which is resolved now (symbolic
    /// links included) and must be a directory.
    ///
    /// # Errors
    ///
    /// [`ServeDirError::NotADirectory`] if `root` does not resolve to a
    /// directory.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, ServeDirError> {
        let given = root.as_ref();
        let not_a_directory = || ServeDirError::NotADirectory {
            root: given.to_path_buf(),
        };
        let root = given.canonicalize().map_err(|_| not_a_directory())?;
        if !root.is_dir() {
            return Err(not_a_directory());
        }
        Ok(ServeDir {
            config: Arc::new(Config {
                root,
                index: Some(String::from("index.html")),
                br: false,
                gzip: false,
                outside: false,
                chunk_size: FileBody::DEFAULT_CHUNK_SIZE,
            }),
        })
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The file served for a directory (`index.html` by default); `None`
    /// makes directories `404`.
    #[must_use]
    pub fn index_file(mut self, name: Option<&str>) -> Self {
        self.config().index = name.map(str::to_owned);
        self
    }

    /// Serves `x.br` for `x` to clients that accept `br`.
    #[must_use]
    pub fn precompressed_br(mut self, on: bool) -> Self {
        self.config().br = on;
        self
    }

    /// Serves `x.gz` for `x` to clients that accept `gzip`.
    #[must_use]
    pub fn precompressed_gzip(mut self, on: bool) -> Self {
        self.config().gzip = on;
        self
    }

    /// Whether symbolic links may lead outside the root (off by default:
    /// such paths are `404`).
    #[must_use]
    pub fn follow_symlinks_outside(mut self, on: bool) -> Self {
        self.config().outside = on;
        self
    }

    /// How many bytes each pull reads when the file is not sent by
    /// platform transfer ([`FileBody::with_chunk_size`]).
    #[must_use]
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.config().chunk_size = bytes.max(1);
        self
    }
}

impl Application for ServeDir {
    type Body = ServeDirBody;

    fn call(
        &self,
        environ: Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<ServeDirBody, BoxError> {
        self.config.serve(&environ, start)
    }

    /// Never reads the request body; blocks on the file system.
    fn hints(&self) -> Hints {
        Hints::default().with_input(InputUse::None)
    }
}

impl AsyncApplication for ServeDir {
    type Body = ServeDirSwitch;

    fn call(
        &self,
        environ: Environ,
        _start: &mut StartResponse<'_>,
    ) -> Result<ServeDirSwitch, BoxError> {
        Ok(ServeDirSwitch {
            pending: Some((Arc::clone(&self.config), environ)),
        })
    }
}

/// The synchronous body of a [`ServeDir`] response: the file (forwarded
/// to the server as [`Body::file`], for `sendfile`), or a short fixed
/// body.
#[derive(Debug)]
pub struct ServeDirBody {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    File(FileBody),
    Fixed(Option<Bytes>),
}

impl ServeDirBody {
    fn fixed(text: &'static str) -> Self {
        ServeDirBody {
            kind: Kind::Fixed(Some(Bytes::from_static(text.as_bytes())).filter(|b| !b.is_empty())),
        }
    }
}

impl Body for ServeDirBody {
    fn next_chunk(&mut self, start: &mut StartResponse<'_>) -> Option<Result<Bytes, BoxError>> {
        match &mut self.kind {
            Kind::File(file) => file.next_chunk(start),
            Kind::Fixed(bytes) => bytes.take().map(Ok),
        }
    }

    fn size_hint(&self) -> Option<u64> {
        match &self.kind {
            Kind::File(file) => Body::size_hint(file),
            Kind::Fixed(bytes) => Some(bytes.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }

    fn file(&mut self) -> Option<&mut FileBody> {
        match &mut self.kind {
            Kind::File(file) => Some(file),
            Kind::Fixed(_) => None,
        }
    }
}

/// The asynchronous body of a [`ServeDir`] response: one
/// [`Step::Switch`] whose continuation serves the request on a worker
/// thread.
#[derive(Debug)]
pub struct ServeDirSwitch {
    pending: Option<(Arc<Config>, Environ)>,
}

impl AsyncBody for ServeDirSwitch {
    fn poll_step(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _start: &mut StartResponse<'_>,
    ) -> Poll<Option<Result<Step, BoxError>>> {
        let this = self.get_mut();
        let Some((config, environ)) = this.pending.take() else {
            return Poll::Ready(None);
        };
        Poll::Ready(Some(Ok(Step::Switch(SyncSwitch::new(move |start| {
            config.serve(&environ, start)
        })))))
    }
}

/// What a request's path resolved to.
enum Found {
    File(PathBuf, Metadata),
    Redirect,
    Missing,
    Forbidden,
}

impl Config {
    fn serve(
        &self,
        environ: &Environ,
        start: &mut StartResponse<'_>,
    ) -> Result<ServeDirBody, BoxError> {
        let method = environ.method();
        if method != Method::GET && method != Method::HEAD {
            start.start(
                ResponseHead::new(StatusCode::METHOD_NOT_ALLOWED)
                    .with_header(ALLOW, HeaderValue::from_static("GET, HEAD"))
                    .with_header(CONTENT_LENGTH, HeaderValue::from(0)),
            )?;
            return Ok(ServeDirBody::fixed(""));
        }
        let head_only = method == Method::HEAD;
        let (path, metadata) = match self.find(environ)? {
            Found::File(path, metadata) => (path, metadata),
            Found::Redirect => {
                // The target as received (mount point included), so the
                // client's own encoding is kept.
                let mut location = String::from(environ.raw_path());
                location.push('/');
                if !environ.query_string().is_empty() {
                    location.push('?');
                    location.push_str(environ.query_string());
                }
                let location = HeaderValue::try_from(location)?;
                start.start(
                    ResponseHead::new(StatusCode::TEMPORARY_REDIRECT)
                        .with_header(LOCATION, location)
                        .with_header(CONTENT_LENGTH, HeaderValue::from(0)),
                )?;
                return Ok(ServeDirBody::fixed(""));
            }
            Found::Missing => return fixed(start, StatusCode::NOT_FOUND, "not found\n", head_only),
            Found::Forbidden => {
                return fixed(start, StatusCode::FORBIDDEN, "forbidden\n", head_only);
            }
        };
        let content_type = content_type(&path);
        let (path, metadata, coding) = self.variant(environ.headers(), path, metadata);
        let validators = Validators::of(&metadata, coding);

        let mut head = ResponseHead::new(StatusCode::OK);
        let headers = head.headers_mut();
        if let Some(etag) = &validators.etag_value {
            headers.insert(ETAG, etag.clone());
        }
        if let Some(date) = validators.last_modified {
            if let Ok(value) = HeaderValue::try_from(httpdate::fmt_http_date(date)) {
                headers.insert(LAST_MODIFIED, value);
            }
        }
        if self.br || self.gzip {
            headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
        }

        match precondition(environ.headers(), &validators) {
            Precondition::Failed => {
                let mut failed = ResponseHead::new(StatusCode::PRECONDITION_FAILED);
                failed
                    .headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from(0));
                start.start(failed)?;
                return Ok(ServeDirBody::fixed(""));
            }
            Precondition::NotModified => {
                head.set_status(StatusCode::NOT_MODIFIED);
                start.start(head)?;
                return Ok(ServeDirBody::fixed(""));
            }
            Precondition::Proceed => {}
        }

        let headers = head.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if let Some(coding) = coding {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.name()));
        }
        let len = metadata.len();
        let range = if head_only {
            Ranged::Whole
        } else {
            range(environ.headers(), &validators, len)
        };
        let io_error = |source| ServeDirError::Io {
            path: path.clone(),
            source,
        };
        let (offset, count) = match range {
            Ranged::Whole => (0, len),
            Ranged::Part(first, last) => {
                head.set_status(StatusCode::PARTIAL_CONTENT);
                head.headers_mut().insert(
                    CONTENT_RANGE,
                    HeaderValue::try_from(format!("bytes {first}-{last}/{len}"))?,
                );
                (first, last - first + 1)
            }
            Ranged::Unsatisfiable => {
                // The validators stay: they describe the representation
                // the range was taken against.
                head.set_status(StatusCode::RANGE_NOT_SATISFIABLE);
                let headers = head.headers_mut();
                headers.remove(CONTENT_TYPE);
                headers.remove(CONTENT_ENCODING);
                headers.insert(
                    CONTENT_RANGE,
                    HeaderValue::try_from(format!("bytes */{len}"))?,
                );
                headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
                start.start(head)?;
                return Ok(ServeDirBody::fixed(""));
            }
        };
        head.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from(count));
        if head_only {
            start.start(head)?;
            return Ok(ServeDirBody::fixed(""));
        }
        let file = File::open(&path).map_err(io_error)?;
        let body = FileBody::range(file, offset, count)
            .map_err(io_error)?
            .with_chunk_size(self.chunk_size);
        start.start(head)?;
        Ok(ServeDirBody {
            kind: Kind::File(body),
        })
    }

    /// Maps the request's path onto the root.
    fn find(&self, environ: &Environ) -> Result<Found, ServeDirError> {
        let raw = environ.raw_path().as_bytes();
        // Decoded, these would be indistinguishable from real separators
        // (or end a C string): refused wherever they appear.
        let encoded_separator = raw.windows(3).any(|w| {
            w[0] == b'%'
                && matches!(
                    &[w[1].to_ascii_uppercase(), w[2].to_ascii_uppercase()],
                    b"2F" | b"5C" | b"00"
                )
        });
        if encoded_separator {
            return Ok(Found::Missing);
        }
        let Ok(path_info) = environ.path_info().to_str() else {
            return Ok(Found::Missing);
        };
        let mut path = self.root.clone();
        for segment in path_info.split('/') {
            match segment {
                "" | "." => {}
                ".." => return Ok(Found::Missing),
                s if s.contains(['\0', '\\']) => return Ok(Found::Missing),
                s => path.push(s),
            }
        }
        let Some(found) = self.inside(&path)? else {
            return Ok(Found::Missing);
        };
        let Some((real, metadata)) = found else {
            return Ok(Found::Forbidden);
        };
        if metadata.is_file() {
            return Ok(if path_info.ends_with('/') {
                // `/file.txt/` names no file (as a shell would say).
                Found::Missing
            } else {
                Found::File(real, metadata)
            });
        }
        if !metadata.is_dir() {
            return Ok(Found::Missing);
        }
        let Some(index) = &self.index else {
            return Ok(Found::Missing);
        };
        if !path_info.ends_with('/') {
            return Ok(Found::Redirect);
        }
        match self.inside(&real.join(index))? {
            Some(Some((real, metadata))) if metadata.is_file() => Ok(Found::File(real, metadata)),
            Some(None) => Ok(Found::Forbidden),
            _ => Ok(Found::Missing),
        }
    }

    /// The real path and metadata of `path` if it exists and is allowed:
    /// `None` if it is missing or leaves the root, `Some(None)` if access
    /// is denied.
    #[allow(clippy::option_option)]
    fn inside(&self, path: &Path) -> Result<Option<Option<(PathBuf, Metadata)>>, ServeDirError> {
        let real = match path.canonicalize() {
            Ok(real) => real,
            Err(err) => return absent(err, path).map(|()| None),
        };
        if !self.outside && !real.starts_with(&self.root) {
            return Ok(None);
        }
        match real.metadata() {
            Ok(metadata) => Ok(Some(Some((real, metadata)))),
            Err(err) if err.kind() == io::ErrorKind::PermissionDenied => Ok(Some(None)),
            Err(err) => absent(err, path).map(|()| None),
        }
    }

    /// The precompressed sibling to serve instead, if one is accepted and
    /// exists.
    fn variant(
        &self,
        headers: &HeaderMap,
        path: PathBuf,
        metadata: Metadata,
    ) -> (PathBuf, Metadata, Option<Coding>) {
        if !(self.br || self.gzip) {
            return (path, metadata, None);
        }
        let accepted = accepted_codings(headers);
        for (coding, _) in accepted {
            let on = match coding {
                Coding::Br => self.br,
                Coding::Gzip => self.gzip,
            };
            if !on {
                continue;
            }
            let mut sibling = path.clone().into_os_string();
            sibling.push(coding.suffix());
            if let Ok(Some(Some((real, meta)))) = self.inside(Path::new(&sibling)) {
                if meta.is_file() {
                    return (real, meta, Some(coding));
                }
            }
        }
        (path, metadata, None)
    }
}

/// `Ok(())` when `err` means the path is not there (`404`), the error
/// otherwise.
fn absent(err: io::Error, path: &Path) -> Result<(), ServeDirError> {
    match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidInput => {
            Ok(())
        }
        // Names too long for the file system, a loop of links: not there.
        _ if err
            .raw_os_error()
            .is_some_and(|code| code == 36 || code == 40) =>
        {
            Ok(())
        }
        _ => Err(ServeDirError::Io {
            path: path.to_path_buf(),
            source: err,
        }),
    }
}

fn fixed(
    start: &mut StartResponse<'_>,
    status: StatusCode,
    text: &'static str,
    head_only: bool,
) -> Result<ServeDirBody, BoxError> {
    start.start(
        ResponseHead::new(status)
            .with_header(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )
            .with_header(CONTENT_LENGTH, HeaderValue::from(text.len())),
    )?;
    Ok(ServeDirBody::fixed(if head_only { "" } else { text }))
}

/// A content coding a precompressed sibling may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    Br,
    Gzip,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Gzip => ".gz",
        }
    }
}

/// The codings `Accept-Encoding` accepts (q > 0), best first, `br` before
/// `gzip` on a tie; a malformed member is skipped.
fn accepted_codings(headers: &HeaderMap) -> Vec<(Coding, u16)> {
    let mut explicit: [Option<u16>; 2] = [None, None];
    let mut star = None;
    for line in headers.get_all(ACCEPT_ENCODING) {
        let Ok(line) = line.to_str() else { continue };
        for member in line.split(',') {
            let mut parts = member.split(';');
            let name = parts.next().unwrap_or("").trim();
            let mut q = Some(1000);
            for param in parts {
                if let Some((key, value)) = param.split_once('=') {
                    if key.trim().eq_ignore_ascii_case("q") {
                        q = parse_q(value.trim());
                    }
                }
            }
            let Some(q) = q else { continue };
            if name.eq_ignore_ascii_case("br") {
                explicit[0] = Some(q);
            } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                explicit[1] = Some(q);
            } else if name == "*" {
                star = Some(q);
            }
        }
    }
    let mut accepted: Vec<(Coding, u16)> = [(Coding::Br, explicit[0]), (Coding::Gzip, explicit[1])]
        .into_iter()
        .filter_map(|(coding, q)| q.or(star).filter(|&q| q > 0).map(|q| (coding, q)))
        .collect();
    // Stable: br stays before gzip on equal weights.
    accepted.sort_by_key(|&(_, q)| std::cmp::Reverse(q));
    accepted
}

/// A q-value (RFC 9110 §12.4.2) in thousandths.
fn parse_q(text: &str) -> Option<u16> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, digit) in frac.bytes().enumerate() {
        thousandths += u16::from(digit - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The validators of the representation served.
struct Validators {
    etag: Option<String>,
    etag_value: Option<HeaderValue>,
    last_modified: Option<SystemTime>,
}

impl Validators {
    fn of(metadata: &Metadata, coding: Option<Coding>) -> Self {
        let modified = metadata.modified().ok();
        let since_epoch = modified.and_then(|m| m.duration_since(UNIX_EPOCH).ok());
        let etag = since_epoch.map(|since| {
            let suffix = coding.map_or("", |c| match c {
                Coding::Br => "-br",
                Coding::Gzip => "-gz",
            });
            format!("\"{:x}-{:x}{suffix}\"", metadata.len(), since.as_nanos())
        });
        Validators {
            etag_value: etag.as_deref().and_then(|e| HeaderValue::from_str(e).ok()),
            etag,
            // HTTP-dates have whole seconds.
            last_modified: since_epoch
                .map(|since| UNIX_EPOCH + Duration::from_secs(since.as_secs())),
        }
    }
}

enum Precondition {
    Proceed,
    NotModified,
    Failed,
}

/// RFC 9110 §13.2.2, steps 1 to 4, for `GET` and `HEAD`.
fn precondition(headers: &HeaderMap, validators: &Validators) -> Precondition {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let date = |name| text(name).and_then(|t| httpdate::parse_http_date(t).ok());
    let etag = validators.etag.as_deref();
    if headers.contains_key(IF_MATCH) {
        if !etag_list_matches(headers, IF_MATCH, etag, true) {
            return Precondition::Failed;
        }
    } else if let (Some(since), Some(modified)) =
        (date(IF_UNMODIFIED_SINCE), validators.last_modified)
    {
        if modified > since {
            return Precondition::Failed;
        }
    }
    if headers.contains_key(IF_NONE_MATCH) {
        if etag_list_matches(headers, IF_NONE_MATCH, etag, false) {
            return Precondition::NotModified;
        }
    } else if let (Some(since), Some(modified)) =
        (date(IF_MODIFIED_SINCE), validators.last_modified)
    {
        if modified <= since {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Whether an `If-Match` / `If-None-Match` list names `etag` (`*` names
/// any current representation). A malformed list matches nothing.
fn etag_list_matches(
    headers: &HeaderMap,
    name: http::header::HeaderName,
    etag: Option<&str>,
    strong: bool,
) -> bool {
    for line in headers.get_all(name) {
        let Ok(line) = line.to_str() else {
            return false;
        };
        if line.trim() == "*" {
            return true;
        }
        let Some(etag) = etag else { continue };
        for member in line.split(',') {
            let member = member.trim();
            let (weak, tag) = match member.strip_prefix("W/") {
                Some(tag) => (true, tag),
                None => (false, member),
            };
            if strong && weak {
                continue;
            }
            if tag == etag {
                return true;
            }
        }
    }
    false
}

enum Ranged {
    Whole,
    Part(u64, u64),
    Unsatisfiable,
}

/// The `Range` of a `GET` (RFC 9110 §14), after `If-Range`.
fn range(headers: &HeaderMap, validators: &Validators, len: u64) -> Ranged {
    let Some(Ok(spec)) = headers.get(RANGE).map(HeaderValue::to_str) else {
        return Ranged::Whole;
    };
    if headers.get_all(RANGE).iter().count() > 1 {
        return Ranged::Whole;
    }
    if let Some(condition) = headers.get(IF_RANGE) {
        let Ok(condition) = condition.to_str() else {
            return Ranged::Whole;
        };
        let matches = if condition.starts_with('"') {
            validators.etag.as_deref() == Some(condition.trim())
        } else {
            httpdate::parse_http_date(condition)
                .ok()
                .is_some_and(|date| Some(date) == validators.last_modified)
        };
        if !matches {
            return Ranged::Whole;
        }
    }
    let Some((unit, set)) = spec.split_once('=') else {
        return Ranged::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranged::Whole;
    }
    let mut members = set.split(',').map(str::trim).filter(|m| !m.is_empty());
    let (Some(only), None) = (members.next(), members.next()) else {
        // No range, or several: multipart is not done, the whole file is.
        return Ranged::Whole;
    };
    let Some((first, last)) = only.split_once('-') else {
        return Ranged::Whole;
    };
    let number = |text: &str| -> Option<u64> {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => Ranged::Whole,
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if len == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Part(len - n.min(len), len - 1),
        },
        (first, "") => match number(first) {
            None => Ranged::Whole,
            Some(first) if first >= len => Ranged::Unsatisfiable,
            Some(first) => Ranged::Part(first, len - 1),
        },
        (first, last) => match (number(first), number(last)) {
            (Some(first), Some(last)) if first <= last => {
                if first >= len {
                    Ranged::Unsatisfiable
                } else {
                    Ranged::Part(first, last.min(len - 1))
                }
            }
            _ => Ranged::Whole,
        },
    }
}

/// The media type of a file, by its extension.
fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("md") => "text/markdown; charset=utf-8",
        Some("xml") => "text/xml; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("avif") => "image/avif",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        Some("pdf") => "application/pdf",
        Some("woff") => "font/woff",
        Some("woff2") => "font/woff2",
        Some("ttf") => "font/ttf",
        Some("otf") => "font/otf",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mp3") => "audio/mpeg",
        Some("ogg") => "audio/ogg",
        Some("wav") => "audio/wav",
        Some("zip") => "application/zip",
        Some("gz") => "application/gzip",
        Some("tar") => "application/x-tar",
        _ => "application/octet-stream",
    }
}
