//! [`Cors`]: cross-origin resource sharing (the Fetch standard's CORS

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, CONTENT_LENGTH, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use rgi::{Environ, ResponseHead};

use crate::middleware::{Incoming, Middleware};

type OriginPredicate = dyn Fn(&HeaderValue, &Environ) -> bool + Send + Sync;

/// Which origins [`Cors`] allows.
#[derive(Clone)]
pub struct AllowOrigin(OriginRule);

#[derive(Clone)]
enum OriginRule {
    Any,
    List(Vec<HeaderValue>),
    Predicate(Arc<OriginPredicate>),
}

impl AllowOrigin {
    /// Every origin.
    #[must_use]
    pub fn any() -> Self {
        AllowOrigin(OriginRule::Any)
    }

    /// The origins listed, compared byte for byte with the request's
    /// `origin` (as browsers serialize it: `scheme://host[:port]`, or
    /// `null`). Entries that are not valid field values are left out.
    pub fn list<I>(origins: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        AllowOrigin(OriginRule::List(
            origins
                .into_iter()
                .filter_map(|origin| HeaderValue::from_str(origin.as_ref()).ok())
                .collect(),
        ))
    }

    /// The origins for which `allowed` says yes, given the request's
    /// `origin` and the request.
    pub fn predicate<F>(allowed: F) -> Self
    where
        F: Fn(&HeaderValue, &Environ) -> bool + Send + Sync + 'static,
    {
        AllowOrigin(OriginRule::Predicate(Arc::new(allowed)))
    }
}

impl fmt::Debug for AllowOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            OriginRule::Any => f.write_str("AllowOrigin::Any"),
            OriginRule::List(list) => f.debug_tuple("AllowOrigin::List").field(list).finish(),
            OriginRule::Predicate(_) => f.write_str("AllowOrigin::Predicate(..)"),
        }
    }
}

/// A list of names, or any.
#[derive(Clone, Debug)]
enum Names<T> {
    Any,
    List(Vec<T>),
}

/// Cross-origin resource sharing (the Fetch standard's CORS protocol)
/// in front of an application.
////// protocol) for the applications behind it.
///
/// # What it does
///
/// - A **preflight** (an `OPTIONS` request with `origin` and
///   `access-control-request-method`) is answered `200` with an empty
///   body by the middleware, without calling the application: with
///   `access-control-allow-origin`, `-allow-credentials`, `-allow-methods`,
///   `-allow-headers` and `-max-age` when the origin is allowed, with none
///   of them when it is not (the browser then refuses the real request).
///   An `OPTIONS` request without those fields is no preflight and goes
///   to the application.
/// - Any other request from an allowed origin gets
///   `access-control-allow-origin`, `-allow-credentials` and
///   `-expose-headers` (when there is something to expose) on the
///   application's response, replacing the application's own values of
///   the fields it sets. A request without `origin`
///   or from another origin gets no CORS fields.
/// - `vary: origin` is added to **every** response, preflight or not,
///   with or without `origin`, whenever `access-control-allow-origin`
///   depends on the request's origin (a list, a predicate, or any origin
///   with credentials); a cache would otherwise serve one origin's answer
///   to another. With any origin and no credentials the answer is the
///   constant `*` and nothing varies. A preflight answer also varies with
///   `access-control-request-method` and `-headers` when it mirrors them.
///
/// # Wildcards and credentials
///
/// The Fetch standard reads `*` literally in answers to credentialed
/// requests. So with [`allow_credentials`](Cors::allow_credentials), a
/// wildcard is answered with the request's own value: any origin with the
/// request's `origin`, any method with its
/// `access-control-request-method`, any header with its
/// `access-control-request-headers`, and exposing any header with the
/// names of the response's own fields. Without credentials a wildcard is
/// `*`.
///
/// # Compared with tower-http's `CorsLayer`
///
/// Checked on the same requests by `tests/cors.rs`; they agree on the
/// status of a preflight and on the `access-control-*` fields for allowed
/// origins. They differ where:
///
/// - tower-http answers **every** `OPTIONS` request itself, preflight or
///   not; this middleware passes an `OPTIONS` request that is no
///   preflight to the application;
/// - tower-http sends `access-control-allow-methods`, `-allow-headers` and
///   `-max-age` to a preflight from an origin it does not allow, and
///   `access-control-allow-origin: *` to requests without `origin`; this
///   middleware sends nothing to either;
/// - tower-http adds `vary: origin, access-control-request-method,
///   access-control-request-headers` to every response by default, even
///   when the answer is the constant `*`; this middleware varies only on
///   what the answer depends on;
/// - tower-http panics when wildcards are combined with credentials; this
///   middleware mirrors the request as above.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use http::Method;
/// use rgi_middleware::{AllowOrigin, Cors, Middleware};
///
/// let cors = Cors::new(AllowOrigin::list(["https://app.example"]))
///     .allow_methods([Method::GET, Method::POST, Method::DELETE])
///     .allow_headers(["content-type", "authorization"])
///     .allow_credentials(true)
///     .max_age(Duration::from_secs(600));
/// let app = cors.wrap(rgi::from_fn(|_environ, start| {
///     start.start(rgi::ResponseHead::new(http::StatusCode::OK))?;
///     Ok(String::from("hello"))
/// }));
/// # use rgi_conformance::client::{TestClient, TestRequest};
/// # let preflight = TestRequest::new(Method::OPTIONS, "/")
/// #     .header(http::header::ORIGIN, http::HeaderValue::from_static("https://app.example"))
/// #     .header(http::header::ACCESS_CONTROL_REQUEST_METHOD, http::HeaderValue::from_static("DELETE"));
/// # let response = TestClient::new(app).request(preflight)?;
/// # response.assert_ok_and_valid();
/// # assert_eq!(response.header("access-control-allow-origin"), Some("https://app.example"));
/// # Ok::<(), rgi_conformance::client::ClientError>(())
/// ```
///
/// ```
/// use rgi_middleware::{AllowOrigin, Cors, Middleware};
///
/// // A public, read-only API.
/// let cors = Cors::new(AllowOrigin::any()).expose_headers(["x-request-id"]);
/// let app = cors.wrap(rgi_async::from_fn(|_environ, start| {
///     start.start(rgi::ResponseHead::new(http::StatusCode::OK))?;
///     Ok(bytes::Bytes::from_static(b"{}"))
/// }));
/// # let _ = app;
/// ```
#[derive(Clone, Debug)]
pub struct Cors {
    origins: AllowOrigin,
    methods: Names<Method>,
    headers: Names<HeaderName>,
    expose: Names<HeaderName>,
    credentials: bool,
    max_age: Option<Duration>,
}

impl Cors {
    /// CORS for `origins`, allowing the CORS-safelisted methods `GET`,
    /// `HEAD` and `POST`, no request headers beyond the safelisted ones,
    /// no credentials, exposing nothing, without `max-age`.
    #[must_use]
    pub fn new(origins: AllowOrigin) -> Self {
        Cors {
            origins,
            methods: Names::List(vec![Method::GET, Method::HEAD, Method::POST]),
            headers: Names::List(Vec::new()),
            expose: Names::List(Vec::new()),
            credentials: false,
            max_age: None,
        }
    }

    /// The methods a preflight allows.
    #[must_use]
    pub fn allow_methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = Names::List(methods.into_iter().collect());
        self
    }

    /// Any method (`*`, or the requested one with credentials).
    #[must_use]
    pub fn allow_any_method(mut self) -> Self {
        self.methods = Names::Any;
        self
    }

    /// The request fields a preflight allows. Names that are not valid
    /// field names are left out.
    #[must_use]
    pub fn allow_headers<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.headers = Names::List(names_of(names));
        self
    }

    /// Any request field (`*`, or the requested ones with credentials).
    #[must_use]
    pub fn allow_any_header(mut self) -> Self {
        self.headers = Names::Any;
        self
    }

    /// The response fields scripts may read beyond the safelisted ones.
    /// Names that are not valid field names are left out.
    #[must_use]
    pub fn expose_headers<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.expose = Names::List(names_of(names));
        self
    }

    /// Every response field (`*`, or the response's own field names with
    /// credentials).
    #[must_use]
    pub fn expose_any_header(mut self) -> Self {
        self.expose = Names::Any;
        self
    }

    /// Allows credentials (cookies, authorization): adds
    /// `access-control-allow-credentials: true` and answers wildcards with
    /// the request's own values.
    #[must_use]
    pub fn allow_credentials(mut self, on: bool) -> Self {
        self.credentials = on;
        self
    }

    /// How long a browser may cache a preflight's answer
    /// (`access-control-max-age`, whole seconds).
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Whether `access-control-allow-origin` depends on the request's
    /// origin (then `vary: origin`).
    fn varies_with_origin(&self) -> bool {
        !matches!(self.origins.0, OriginRule::Any) || self.credentials
    }

    /// The `access-control-allow-origin` value for the request, if its
    /// origin is allowed.
    fn allowed_origin(&self, environ: &Environ) -> Option<HeaderValue> {
        let origin = environ.headers().get(ORIGIN)?;
        let allowed = match &self.origins.0 {
            OriginRule::Any => true,
            OriginRule::List(list) => list.iter().any(|o| o == origin),
            OriginRule::Predicate(allowed) => allowed(origin, environ),
        };
        if !allowed {
            return None;
        }
        if matches!(self.origins.0, OriginRule::Any) && !self.credentials {
            Some(HeaderValue::from_static("*"))
        } else {
            Some(origin.clone())
        }
    }

    /// The answer to a preflight.
    fn preflight(&self, environ: &Environ) -> ResponseHead {
        let mut head = ResponseHead::new(StatusCode::OK)
            .with_header(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let headers = head.headers_mut();
        let mut vary: Vec<&'static str> = Vec::new();
        if self.varies_with_origin() {
            vary.push("origin");
        }
        if self.credentials && matches!(self.methods, Names::Any) {
            vary.push("access-control-request-method");
        }
        if self.credentials && matches!(self.headers, Names::Any) {
            vary.push("access-control-request-headers");
        }
        let requested_method = environ
            .headers()
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
        let requested_headers = requested_header_names(environ.headers());
        let origin = self.allowed_origin(environ);
        if let (Some(origin), Some(method)) = (origin, requested_method) {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            if self.credentials {
                headers.insert(
                    ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            let methods = match &self.methods {
                Names::Any if self.credentials => HeaderValue::from_str(method.as_str()).ok(),
                Names::Any => Some(HeaderValue::from_static("*")),
                Names::List(list) => joined(list.iter().map(Method::as_str)),
            };
            if let Some(methods) = methods {
                headers.insert(ACCESS_CONTROL_ALLOW_METHODS, methods);
            }
            let allowed_headers = match &self.headers {
                Names::Any if self.credentials => {
                    requested_headers.and_then(|names| joined(names.iter().map(HeaderName::as_str)))
                }
                Names::Any => Some(HeaderValue::from_static("*")),
                Names::List(list) => joined(list.iter().map(HeaderName::as_str)),
            };
            if let Some(allowed_headers) = allowed_headers {
                headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, allowed_headers);
            }
            if let Some(age) = self.max_age {
                headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age.as_secs()));
            }
        }
        for name in vary {
            add_vary(headers, name);
        }
        head
    }
}

/// The valid field names among `names`, lower-cased.
fn names_of<I>(names: I) -> Vec<HeaderName>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    names
        .into_iter()
        .filter_map(|name| HeaderName::from_bytes(name.as_ref().trim().as_bytes()).ok())
        .collect()
}

/// The names in a preflight's `access-control-request-headers`; `None`
/// when any is not a valid field name (nothing is mirrored then).
fn requested_header_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for value in headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS) {
        let value = value.to_str().ok()?;
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            names.push(HeaderName::from_bytes(name.as_bytes()).ok()?);
        }
    }
    Some(names)
}

/// `a, b, c` as one field value; `None` for an empty list.
fn joined<'a>(items: impl Iterator<Item = &'a str>) -> Option<HeaderValue> {
    let mut value = String::new();
    for item in items {
        if !value.is_empty() {
            value.push_str(", ");
        }
        value.push_str(item);
    }
    if value.is_empty() {
        return None;
    }
    HeaderValue::from_str(&value).ok()
}

/// Adds `name` to `vary` unless the field already names it or `*`.
fn add_vary(headers: &mut HeaderMap, name: &'static str) {
    let named = headers.get_all(VARY).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',').any(|n| {
                let n = n.trim();
                n == "*" || n.eq_ignore_ascii_case(name)
            })
        })
    });
    if !named {
        headers.append(VARY, HeaderValue::from_static(name));
    }
}

fn is_preflight(environ: &Environ) -> bool {
    environ.method() == Method::OPTIONS
        && environ.headers().contains_key(ORIGIN)
        && environ
            .headers()
            .contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// The per-request state of [`Cors`]: the `access-control-allow-origin`
/// value the response gets, if the origin is allowed.
#[derive(Debug)]
pub struct CorsState {
    allow_origin: Option<HeaderValue>,
}

impl Middleware for Cors {
    type State = CorsState;

    fn on_request(&self, request: &mut Incoming<'_>) -> CorsState {
        if is_preflight(request.environ()) {
            let head = self.preflight(request.environ());
            request.respond(head, "");
            return CorsState { allow_origin: None };
        }
        CorsState {
            allow_origin: self.allowed_origin(request.environ()),
        }
    }

    fn on_head(&self, state: &mut CorsState, head: &mut ResponseHead) {
        let headers = head.headers_mut();
        if self.varies_with_origin() {
            add_vary(headers, "origin");
        }
        let Some(origin) = state.allow_origin.clone() else {
            return;
        };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if self.credentials {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        let expose = match &self.expose {
            Names::Any if self.credentials => {
                let mut names: Vec<&str> = Vec::new();
                for name in headers.keys() {
                    if !names.contains(&name.as_str())
                        && !name.as_str().starts_with("access-control-")
                    {
                        names.push(name.as_str());
                    }
                }
                joined(names.into_iter())
            }
            Names::Any => Some(HeaderValue::from_static("*")),
            Names::List(list) => joined(list.iter().map(HeaderName::as_str)),
        };
        if let Some(expose) = expose {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose);
        }
    }
}
