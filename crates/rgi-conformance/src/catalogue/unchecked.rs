//! Written reasons why a clause has no automated check.
//!
//! Every `MUST` and `MUST NOT` clause is either judged by a check of the
//! kit or listed here with a specific reason: the type system enforces it
//! (the bound or type is named), the `rgi` or `rgi-async` crate implements
//! it once for every party and its own tests prove it (a path, a colon and
//! the test names in backticks; `tests/catalogue.rs` proves that those
//! files and functions exist, and that every check a reason names is one of
//! the kit's), it is a property of source code or of the deployment that no
//! run can observe, or what it concerns is out of the suite's sight (and
//! why). A reason for a clause that a check judges is stale and fails the
//! kit's tests.

/// `(clause ID, reason)` for every clause no check judges, in spec order.
pub const UNCHECKED: &[(&str, &str)] = &[
    // ---- spec/rgi.md ------------------------------------------------------
    (
        "RGI-APP-1",
        "Enforced by the type system: servers accept only values whose type implements `rgi::Application` (the suite's `ServerUnderTest::start` takes a `Probe`, which is one), so a value that is not an application cannot be handed to a server at all.",
    ),
    (
        "RGI-APP-2",
        "Enforced in part by the type system: `Application: Send + Sync + 'static` makes unsynchronised shared mutable state fail to compile. That the application's own synchronised state stays logically correct under concurrent calls is a property of its code that no wrapper can decide from a run.",
    ),
    (
        "RGI-APP-3",
        "Enforced in part by the type system: `call` takes `&self`. State that one request leaves for the next through interior mutability cannot be told apart, from outside, from intended shared state such as a cache or a counter.",
    ),
    (
        "RGI-APP-6",
        "Enforced by the type system: `Application::call` returns `Result<Self::Body, BoxError>`, so there is nothing else it can return.",
    ),
    (
        "RGI-APP-8",
        "A property of the server's source, not of its behaviour: the suite hands every server a `Probe`, whose bodies are boxed private types, so a downcast to a known type never succeeds on them and no case can tell a server that would downcast other types from one that never does.",
    ),
    (
        "RGI-ENV-9",
        "Enforced by the type: `Environ` holds its `Input` and `Errors` in fields that are not optional, `Environ::from_parts` takes the `Input` as an argument and installs `Errors::stderr()`, and `Environ::builder()` defaults them to `Input::empty()` and `Errors::stderr()` (crates/rgi/tests/environ.rs: `builder_defaults_describe_a_plain_local_get`), so no environ exists without them; that the default stream costs no allocation is counted in crates/rgi/tests/environ_allocations.rs: `the_default_error_stream_and_an_http2_body_cost_nothing`.",
    ),
    (
        "RGI-ENV-13",
        "A property of the server's source that no run can observe: a server that built a new `ServerInfo` for every request would answer exactly the same. What the type guarantees is checked by the rgi crate: a `ServerInfo` exists only once `ServerInfo::new` and `ServerInfo::with_script_name` accepted it, and `Environ::from_parts` shares the one it is given (crates/rgi/tests/environ.rs: `server_info_is_checked_once_when_built`, `from_parts_moves_the_head_in`).",
    ),
    (
        "RGI-ENV-14",
        "A property of the server's source: a head passed on as parsed and one rebuilt with equal values give the application the same environ, and the values themselves are judged under RGI-ENV-3, RGI-ENV-4 and RGI-HDR-1. That `Environ::from_parts` moves the head in unchanged and without copying is the rgi crate's (crates/rgi/tests/environ.rs: `from_parts_moves_the_head_in`; crates/rgi/tests/environ_allocations.rs: `from_parts_for_a_plain_path_allocates_nothing`).",
    ),
    (
        "RGI-PATH-7",
        "Middleware obligation on how it edits paths, visible only in its source: a hand-made edit and `Environ::shift_path` can give the same strings for one path. The behaviour it relies on is the rgi crate's (crates/rgi/tests/environ.rs: `shift_path_moves_one_segment_at_a_time`, `shift_path_keeps_encoded_slashes_inside_the_segment`, `shift_path_refuses_an_empty_first_segment`, `shift_path_does_not_apply_to_the_asterisk`).",
    ),
    (
        "RGI-CONN-6",
        "Not yet judged by a suite case (a note for the kit): the snapshot a probe takes of its environ (suite/cases/kit.rs) records `remote_addr()` and `url_scheme()` but not `Environ::connection()`; a case sending two requests on one keep-alive connection and comparing the two `Arc`s with `Arc::ptr_eq`, and a third on a new connection, would judge it. Sharing one value between environs is the rgi crate's (crates/rgi/tests/connection.rs: `every_request_of_a_connection_shares_one_value`).",
    ),
    (
        "RGI-CONN-7",
        "A guess and a fact look alike unless the suite knows the truth: it knows only its own client's address and that it uses no TLS, which the cases of RGI-ENV-6 and RGI-ENV-7 judge through `remote_addr()` and `url_scheme()`; the server's local address as it sees it, and every TLS field, are beyond what `ServerUnderTest` lets the suite set up or know. The type makes `None` the starting value of every field (crates/rgi/tests/connection.rs: `nothing_known_means_plain_http_without_a_peer`, `tls_details_are_what_the_server_filled_in`).",
    ),
    (
        "RGI-CONN-8",
        "Out of the suite's sight: its client connects over TCP and through no proxy, so only `Address::Tcp` can occur, which the case of RGI-ENV-6 judges through `remote_addr()`; Unix-domain sockets and the PROXY protocol are deployments `ServerUnderTest` cannot ask a server for. What each variant means to `remote_addr()` is the rgi crate's (crates/rgi/tests/connection.rs: `a_unix_socket_peer_has_no_remote_addr`, `a_proxied_peer_names_the_proxy_that_declared_it`).",
    ),
    (
        "RGI-CONN-9",
        "Out of the suite's sight: its client speaks plain TCP, so no TLS version, SNI name, ALPN protocol or client certificate exists to be reported; the one observable case, no TLS, is judged through `url_scheme()` by the case of RGI-ENV-7. The accessors are the rgi crate's (crates/rgi/tests/connection.rs: `tls_details_are_what_the_server_filled_in`).",
    ),
    (
        "RGI-CONN-10",
        "Enforced by the type: `Environ` has no field for the scheme or the remote address; `url_scheme()` and `remote_addr()` are computed from `connection()`, and `EnvironBuilder::remote_addr` and `EnvironBuilder::url_scheme` edit that same value (crates/rgi/tests/connection.rs: `url_scheme_and_remote_addr_derive_from_the_connection`, `the_builder_records_remote_addr_and_scheme_in_the_connection`), so no server can make them disagree.",
    ),
    (
        "RGI-INPUT-20",
        "Out of the suite's sight for now (a note for the kit): its client speaks HTTP/1.1, where a body without Content-Length is chunked and already judged under RGI-INPUT-2; an HTTP/2 client sending DATA frames without content-length, and a probe checking it read every byte, would judge it. That `Input::new(source, None)` over such a stream is read to its end is the rgi crate's (crates/rgi/tests/environ.rs: `d3_http2_body_without_content_length_is_read_to_its_end`).",
    ),
    (
        "RGI-INPUT-21",
        "Out of the suite's sight for now (a note for the kit): it needs an HTTP/2 client; on HTTP/1.1 the same rule is RGI-ENV-10's. That an HTTP/2 environ keeps the declared length and `Environ::from_parts` refuses a disagreeing one is the rgi crate's (crates/rgi/tests/environ.rs: `d3_http2_body_with_content_length_keeps_its_length`, `from_parts_checks_what_build_checks`).",
    ),
    (
        "RGI-INPUT-8",
        "Implemented by `rgi::Input`, which every server must use (RGI-INPUT-1) and which supplies the line reads itself; tested in crates/rgi/tests/input.rs: `read_line_limited_stops_at_newline_limit_or_end`, `read_line_limited_spans_buffer_refills`, `line_reads_agree_with_splitting_after_each_newline`, `limited_line_reads_agree_with_a_reference_split`.",
    ),
    (
        "RGI-ERRS-3",
        "Application obligation about intent: only the application knows at which points its error output must be on record. The flush it calls reaches the server's sink through `rgi::Errors` (crates/rgi/tests/errors.rs: `writes_reach_the_sink`).",
    ),
    (
        "RGI-START-14",
        "Behaviour of the rgi crate, the same for every party: `StartResponse::intercept` is implemented once in crates/rgi/src/response.rs and tested in (crates/rgi/tests/response.rs: `interceptors_see_and_rewrite_heads_and_writes_in_nesting_order`, `intercepted_heads_are_validated_after_the_hooks_ran`).",
    ),
    (
        "RGI-HEAD-3",
        "Enforced by the types: field names are `http::HeaderName` values, tokens by construction, and `ResponseHead::from_raw` rejects any other name (crates/rgi/tests/response.rs: `header_name_that_is_not_a_token_is_rejected_with_the_name`), so no head with a bad name reaches a server or the validator.",
    ),
    (
        "RGI-HEAD-4",
        "Enforced by the types: every safe constructor of `http::HeaderValue` refuses CR, LF, NUL and the other controls except HTAB (only the `unsafe` `from_maybe_shared_unchecked` skips the check, and the workspace forbids unsafe code), and `ResponseHead::from_raw` reports them (crates/rgi/tests/response.rs: `header_value_with_cr_lf_nul_or_ctl_is_rejected_with_the_value`).",
    ),
    (
        "RGI-HEAD-7",
        "Behaviour of `rgi::ResponseState`, which every server must use (RGI-START-1, checked by the validator's `handle_state_lost` and `state_reused`): `start` and `replace` validate the head after the interceptors ran (crates/rgi/tests/response.rs: `intercepted_heads_are_validated_after_the_hooks_ran`, `informational_status_is_not_a_final_response`, `every_hop_by_hop_field_is_rejected_with_its_name`, `content_length_on_204_is_rejected`).",
    ),
    (
        "RGI-BODY-1",
        "Enforced by the type system: `Body::next_chunk` returns `Option<Result<Bytes, BoxError>>`, whose three shapes are exactly the three answers the clause allows.",
    ),
    (
        "RGI-CL-11",
        "Out of the suite's sight: the size a server reports to its own HTTP layer is an in-process value between two of its components. Its effect, a body that runs past the Content-Length field, is judged on the wire under RGI-CL-1; the one source of the value is `ResponseState::content_length()` (crates/rgi/tests/declared_length.rs: `d1_the_applications_content_length_wins_over_a_disagreeing_declaration`, `d1_head_requests_and_bodiless_statuses_carry_no_declared_length`).",
    ),
    (
        "RGI-CL-12",
        "Between two of a server's own components: whether its sink writes the declared length itself or lets the provided method write it is invisible from outside; what the client sees is one Content-Length equal to the enforced length, judged on the wire under RGI-CL-10 and RGI-CL-1. The hand-over is the rgi crate's (crates/rgi/tests/declared_length.rs: `d1_a_sink_that_writes_the_length_itself_gets_the_declaration_beside_the_head`, `d1_the_default_sink_writes_the_declared_length_into_the_head`).",
    ),
    (
        "RGI-FILE-4",
        "An internal step of a server's platform-transfer path, visible only through the bytes it sends, which the suite judges under RGI-FILE-5. The pieces are the rgi crate's (crates/rgi/tests/body.rs: `file_body_range_stops_at_its_length_and_resumes_after_sendfile_progress`) and (crates/rgi/tests/response.rs: `a_sendfile_server_sends_the_head_alone_and_records_what_it_sent`).",
    ),
    (
        "RGI-FILE-6",
        "Enforced by the types: `FileBody::new` and `FileBody::range` take a `File` and offsets and have no access to a `StartResponse` or a sink, so creating one transmits nothing, and a server gets the body only as the return value of `call`.",
    ),
    (
        "RGI-HINT-2",
        "A constant of the rgi crate, not a behaviour of any party: `impl Default for Hints` returns `Hints::CONSERVATIVE` (`InputUse::Streaming`, `may_block: true`) in crates/rgi/src/hints.rs, and the example on `Hints` asserts that the default cannot run inline.",
    ),
    (
        "RGI-LIMIT-1",
        "A property of the server's configuration and documentation, not of one exchange: that every limit can be configured, is finite and has a documented default is read in the server's manual and configuration types. A run can only show that a limit exists at some value (RGI-LIMIT-2 to RGI-LIMIT-8); it cannot show that the value is configurable or that no setting switches the limit off.",
    ),
    (
        "RGI-LIMIT-8",
        "Out of the suite's sight: `ServerUnderTest::start` serves plain HTTP/1.1 without TLS and without protocol detection, so the phases this clause bounds do not occur in a suite run. A case needs a server started with TLS (or with HTTP/2 detection) and short phase times, and a client that connects and then sends nothing or half a handshake.",
    ),
    (
        "RGI-H2-1",
        "Out of the suite's sight: the suite speaks HTTP/1.1 only (crates/rgi-conformance/src/suite/wire.rs) and neither the toy server nor any other server under test speaks HTTP/2. A case needs an HTTP/2 client in the kit and a server that claims HTTP/2; it would compare the probe's `version()`, `uri()` and `url_scheme()` with what was sent.",
    ),
    (
        "RGI-H2-2",
        "Out of the suite's sight: no HTTP/2 client in the kit and no HTTP/2 server under test (see RGI-H2-1). A case would send requests with `:authority` only, Host only, both equal, both different and neither, and check the probe's `host` entry or the 400.",
    ),
    (
        "RGI-H2-3",
        "Out of the suite's sight: no HTTP/2 client in the kit and no HTTP/2 server under test (see RGI-H2-1). A case would send each connection-specific field and check that the probe is never called, and send split `cookie` fields and check that they arrive as separate entries.",
    ),
    (
        "RGI-H2-4",
        "Out of the suite's sight: no HTTP/2 client in the kit and no HTTP/2 server under test (see RGI-H2-1). A case would send a body with and without `content-length`, and HEADERS with END_STREAM, and check the probe's `content_length()` and the bytes it reads; and send DATA that disagrees with `content-length` and check for a reset.",
    ),
    (
        "RGI-H2-5",
        "Out of the suite's sight: no HTTP/2 client in the kit and no HTTP/2 server under test (see RGI-H2-1). A case would check the response HEADERS for connection-specific fields, END_STREAM after a complete response, and RST_STREAM after a failure past the head and after a Content-Length shortfall.",
    ),
    (
        "RGI-H2-6",
        "Out of the suite's sight: no HTTP/2 client in the kit and no HTTP/2 server under test (see RGI-H2-1). The HTTP/1.1 counterpart is judged by the streaming cases; an HTTP/2 case would time DATA frames of a streamed probe response the same way.",
    ),
    (
        "RGI-H2-7",
        "Out of the suite's sight: no HTTP/2 client in the kit and no HTTP/2 server under test (see RGI-H2-1). A case would trigger a refusal and an unread body on one stream and check that another stream of the same connection still completes.",
    ),
    (
        "RGI-H2-8",
        "Out of the suite's sight: no HTTP/2 client in the kit and no HTTP/2 server under test (see RGI-H2-1). A case would read the server's SETTINGS for finite MAX_CONCURRENT_STREAMS and MAX_HEADER_LIST_SIZE and exceed each limit on a stream.",
    ),
    (
        "RGI-H2-9",
        "Out of the suite's sight: no HTTP/2 client in the kit and no HTTP/2 server under test (see RGI-H2-1). A case would send `expect: 100-continue` on a stream and check that the probe reads the whole body whether or not an interim HEADERS frame came first.",
    ),
    (
        "RGI-H2-11",
        "Out of the suite's sight: no HTTP/2 client in the kit and no HTTP/2 server under test (see RGI-H2-1), and no probe route accepts an upgrade over extended CONNECT. A case would send an extended CONNECT with `:protocol`, check the probe's environ, accept, and check for a 200 response and an echo over the stream.",
    ),
    (
        "RGI-FAIL-11",
        "After the head, the client's fault ends the response like any failure after the head, which the suite judges under RGI-FAIL-5; what is specific here, that `rgi::client_body_error` recognises the error, is tested in crates/rgi/tests/client_errors.rs: `client_body_error_finds_the_error_however_the_application_wrapped_it`. The suite has no case yet that makes a server's source report a client error after the head.",
    ),
    (
        "RGI-MW-1",
        "A summary of other clauses, judged through them: a middleware is validated with a validator on each side, `Validator::new(middleware(Validator::new(app)))`, where the outer one reports its application-side breaches and the inner one its server-side breaches, each under its own clause ID (the validator's module documentation describes this set-up).",
    ),
    (
        "RGI-MW-2",
        "The clause allows either handle, and each choice is judged as the clauses it then owes: a validator placed inside the middleware reports a handle that is not over the request's own, fresh `ResponseState` under RGI-START-1 and RGI-APP-5 (`handle_state_lost`, `state_reused`).",
    ),
    (
        "RGI-EXT-1",
        "Enforced by the types: the request's and the server's extensions are both `http::Extensions`, maps keyed by `TypeId`, so an extension is identified by its type and there is no string key to use; the override order is the code of `Environ::extension`, which every lookup through it follows (crates/rgi/tests/environ.rs: `a_request_value_overrides_the_server_wide_one_for_that_request_only`, `server_wide_extensions_reach_every_request_of_the_server`).",
    ),
    (
        "RGI-EXT-2",
        "A rule about which crate defines a type, decided by reading the code: at run time a value of a type the inserter does not own looks like any other extension.",
    ),
    (
        "RGI-EXT-4",
        "Ignoring an unknown value means behaving exactly as without it, which is no observable event; removing one is visible only to a party that knows its type, and the kit does not know the extension types of servers or middleware.",
    ),
    (
        "RGI-EXT-5",
        "A property of a server's extension types: an application that does not use an extension never touches it, so the suite's probes, which use none, already see the core behaviour that every other case judges.",
    ),
    (
        "RGI-EXT-6",
        "A design rule for extension APIs (take the replaced object, refuse when it is not the original), judged by reading the extension's signature; extensions are server-specific types, and the kit has none of a server's to call.",
    ),
    (
        "RGI-VER-1",
        "A constant of the rgi crate: `rgi::SPEC_VERSION` is `SpecVersion { major: 1, minor: 2 }` in crates/rgi/src/version.rs, and its example asserts that it displays as 1.2.",
    ),
    (
        "RGI-VER-2",
        "A rule for revising the document and for code that matches on `rgi`'s `#[non_exhaustive]` types; the compiler enforces the second half for code outside `rgi`: a match without a wildcard arm does not compile (the compile-fail examples in the rustdoc of `UrlScheme` and `Address`), one with it compiles under `deny(warnings)`, and a struct literal of `Hints`, `Concurrency` or `SpecVersion` is refused, so code builds them through their constants and constructors (crates/rgi/tests/evolution.rs: `d7_url_scheme_and_addresses_are_matched_with_a_wildcard_arm`, `d7_error_enums_are_matched_with_a_wildcard_arm`, `d7_structs_with_public_fields_are_built_through_constructors`); what the wildcard arm does is application logic.",
    ),
    (
        "RGI-VER-3",
        "A property of the manifests, not of any run: crates/rgi/Cargo.toml lists only `bytes`, `http` and `thiserror`, crates/rgi-async/Cargo.toml adds only `rgi`, `futures-core` and `pin-project-lite`, and neither lists a runtime; a change is a manifest edit that review sees.",
    ),
    (
        "RGI-TRAILER-8",
        "A middleware obligation about what its trailer fields mean: whether a field is still true after the middleware changed the content (a digest or a signature of the original bytes) depends on the field's semantics, which no wrapper knows, and a field removed on purpose looks like one lost. The hook through which a layer sees and edits the trailers is the rgi crate's (crates/rgi/tests/optional_features.rs: `a_layer_sees_trailers_and_early_hints_on_their_way`).",
    ),
    (
        "RGI-LIFE-6",
        "An obligation on the application's own code: that startup and shutdown return within a bounded time and wait for nothing only a served request can bring about is a property of what they do, which a run shows only as a start-up that has not ended yet; a server turns one that never ends into a failed start-up through its timeout (RGI-LIFE-2), and no wait tells a slow start-up that would end from one that waits for a request.",
    ),
    // ---- spec/rgi-async.md ------------------------------------------------
    (
        "RGIA-APP-8",
        "Application obligation about resources the kit cannot see: the descriptors, subscriptions and futures a body holds are private to it, and whether dropping it released them is visible only to the application and the operating system.",
    ),
    (
        "RGIA-INPUT-6",
        "Behaviour of `rgi::Input`, the same for every party: implemented once in the rgi crate and tested in (crates/rgi/tests/input_async.rs: `the_non_blocking_face_refuses_a_blocking_source_with_a_typed_error`) and (crates/rgi-async/tests/input.rs: `blocking_source_reports_would_block_thread_without_ending`).",
    ),
    (
        "RGIA-INPUT-12",
        "A negative about every capability a server offers: the capabilities RGI-async defines (offload, readiness, after-response, upgrade) have no operation that reads the request's connection, and readiness waits take the application's own descriptors; a side door would be a server-specific extension type, which the kit does not know.",
    ),
    (
        "RGIA-READY-4",
        "Application obligation after a `Ready` outcome: the non-blocking attempt and the wait after `WouldBlock` happen on the application's own descriptor, which the kit never sees.",
    ),
    (
        "RGIA-READY-5",
        "Application obligation about the mode of its own descriptors, which the kit does not hold; a blocking operation on a loop thread shows only as a stall of other requests, which the suite judges against the server (RGIA-TASK-1), not the application.",
    ),
    (
        "RGIA-READY-14",
        "Enforced by the types for safe code: a wait borrows its descriptor (`WaitFuture<'a>` from a `Source<'a>` over a `BorrowedFd<'a>`), so the descriptor cannot be closed while the future exists; only code that builds a `BorrowedFd` from a raw number with `unsafe` takes the duty on itself.",
    ),
    (
        "RGIA-OFFLOAD-4",
        "Behaviour of `rgi_async::Offload::run`, the same for every server: tested in (crates/rgi-async/tests/offload.rs: `the_closure_runs_on_a_service_thread`, `saturation_is_passed_through_and_the_job_never_runs`, `a_refusal_to_accept_during_shutdown_is_passed_through`).",
    ),
    (
        "RGIA-OFFLOAD-8",
        "Behaviour of `rgi_async::OffloadFuture`, the same for every server: tested in (crates/rgi-async/tests/offload.rs: `a_job_whose_future_was_dropped_before_it_started_is_skipped`, `a_running_job_whose_future_is_dropped_finishes_and_its_result_is_discarded`).",
    ),
    (
        "RGIA-OFFLOAD-10",
        "Application obligation: which of its operations block is known to the application, not to a wrapper. The validator catches the one blocking operation it can see, a blocking read of the input on a loop thread (`blocking_read_on_loop_thread`, RGIA-INPUT-8).",
    ),
    (
        "RGIA-SWITCH-8",
        "Not observable through `ServerUnderTest` today: the suite cannot make a server refuse a switch, because `start` takes no worker-pool or switch-queue size and a server's own bound is unknown to the case, while a refusal at shutdown races with `RunningServer::stop` closing the connection. A case needs a start option that caps the switch queue (one worker, no queue), two concurrent switching requests, and a check that one gets 503 before its head or an incomplete response after it.",
    ),
    (
        "RGIA-AFTER-6",
        "Application obligation about what it relies on: reliance on a task being run shows only when the server drops it (over its cap or at shutdown), and then as a wrong result that only the application can recognise.",
    ),
    (
        "RGIA-COMP-1",
        "A rule for assembling a stack, enforced by the crates' types for the adapters they offer: an asynchronous middleware wraps an `AsyncApplication`, a synchronous application becomes one only through `rgi_async::Threaded`, and there is no adapter in the other direction; a stack that breaks the rule needs a hand-written bridge that drives futures, which reading the code shows.",
    ),
    (
        "RGIA-COMP-4",
        "Behaviour of `rgi_async::Threaded`, the same for every server: tested in (crates/rgi-async/tests/threaded.rs: `the_application_runs_on_a_worker_and_its_chunks_reach_the_server`, `the_application_reads_its_input_blocking_on_the_worker`), and exercised by every synchronous suite case run against an asynchronous server, since `Probe` serves a synchronous probe through `Threaded`.",
    ),
    (
        "RGIA-COMP-5",
        "Behaviour of `rgi_async::Threaded`, the same for every server: tested in (crates/rgi-async/tests/threaded.rs: `the_worker_pulls_only_as_fast_as_the_server_polls`, `a_lazily_started_and_replaced_head_is_relayed_once_in_its_final_form`, `a_head_without_body_is_relayed_at_the_end`).",
    ),
    (
        "RGIA-COMP-13",
        "The toy server never runs an application on a loop thread (synchronous applications get a thread per connection), so no suite case can see an inline read; the rule binds `rgi_async::Threaded`, the adapter every asynchronous server runs synchronous code through, tested in crates/rgi-async/tests/threaded.rs: `d5_an_inline_read_that_would_wait_fails_typed_instead_of_parking_the_loop`, `d5_an_inline_read_still_gets_the_bytes_already_there` (a read that would wait fails with `InputError::WouldBlockThread` within the test's time limit instead of parking; bytes already there are delivered).",
    ),
    (
        "RGIA-COMP-14",
        "Behaviour of `rgi_async::Threaded`, the same for every server; each of its paths (inline, pre-read through the non-blocking face, offload with the job only queued when `call` returns) is tested in crates/rgi-async/tests/threaded.rs: `d5_an_inline_read_that_would_wait_fails_typed_instead_of_parking_the_loop`, `a_whole_input_application_runs_inline_after_a_pre_read`, `a_declared_length_past_the_limit_is_offloaded_without_a_pre_read`.",
    ),
    // Checked by the validator when the `tokio-context` feature is on.
    #[cfg(not(feature = "tokio-context"))]
    (
        "RGIA-RT-1",
        "Whether a runtime's context is entered can only be asked through that runtime's own crate, which the kit depends on only with its `tokio-context` feature (the spec crates may not depend on any runtime); the toy declares no runtime, so its requests refuse every runtime they require (crates/rgi-async/tests/capabilities.rs: `runtime_context_is_refused_typed_when_not_declared_or_different`). A tokio server tests this clause with `Handle::try_current` inside its own application.",
    ),
    (
        "RGIA-RT-2",
        "A server's configuration rather than an observable behaviour of one request; the declaration is a field of the `Capabilities` value the server builds once (`CapabilitiesBuilder::runtime`), tested in crates/rgi-async/tests/capabilities.rs: `runtime_context_is_refused_typed_when_not_declared_or_different`.",
    ),
    (
        "RGIA-RT-3",
        "Implemented by `rgi_async::Capabilities::require_runtime`, the same for every server, tested in crates/rgi-async/tests/capabilities.rs: `runtime_context_is_refused_typed_when_not_declared_or_different`, `runtime_refusal_reaches_the_server_as_an_error_of_call`.",
    ),
    (
        "RGIA-RT-4",
        "Application logic around a library the kit cannot see: no wrapper can tell that a body uses a runtime-bound library. The refusal it must check is typed and travels as an error of `call` (crates/rgi-async/tests/capabilities.rs: `runtime_refusal_reaches_the_server_as_an_error_of_call`).",
    ),
    (
        "RGIA-RT-5",
        "Application logic in code that runs on worker threads; nothing an application does there is visible to a wrapper as a use of a runtime's context.",
    ),
    (
        "RGIA-COMP-6",
        "Behaviour of `rgi_async::Threaded`, a library adapter rather than a server, tested in crates/rgi-async/tests/threaded.rs: `a_non_blocking_application_without_input_runs_inline`, `a_non_blocking_application_that_may_read_input_is_offloaded`, `a_whole_input_application_runs_inline_after_a_pre_read`, `a_body_past_the_pre_read_limit_goes_to_the_offload_path_whole`, `a_declared_length_past_the_limit_is_offloaded_without_a_pre_read`, `a_blocking_input_sends_a_whole_input_application_to_the_offload_path` (the documented limit is `rgi_async::PRE_READ_LIMIT`).",
    ),
    (
        "RGIA-COMP-7",
        "Behaviour of `rgi_async::Threaded`, the same for every server: tested in (crates/rgi-async/tests/threaded.rs: `dropping_the_body_stops_the_worker_and_drops_its_body_there`, `a_request_cancelled_before_its_job_started_never_calls_the_application`).",
    ),
    (
        "RGIA-COMP-8",
        "Behaviour of `rgi_async::Threaded`, a library adapter rather than a server: errors and panics are relayed as failure steps, and an offload that never ran the application is answered 503 when nothing was started (crates/rgi-async/tests/threaded.rs: `a_panicking_application_becomes_an_error_not_an_unwind`, `the_workers_response_rules_are_enforced_and_reported`, `a_saturated_offload_is_answered_503`, `a_job_dropped_at_shutdown_is_answered_503`, `a_job_dropped_after_the_head_was_started_is_an_error`).",
    ),
    (
        "RGIA-TASK-6",
        "Not observable through `RunningServer`: the clause governs a worker still busy when the server's own grace period ends, and that moment is invisible to the suite, because until then the server may go on pulling the body. `RunningServer::stop` must return only once the server's threads have ended (a run that leaves one running fails RGI-CONN-5), so the suite never sees a server that abandons a worker; the abandonment is logged to the server's log, which the suite does not read.",
    ),
    (
        "RGIA-VER-2",
        "A rule for the authors of future revisions of spec/rgi-async.md, not a behaviour of any party; the enums it concerns are `#[non_exhaustive]`, so new variants do not break code outside the crates.",
    ),
    (
        "RGIA-VER-4",
        "Enforced by the compiler for code outside the crates: every public enum of rgi-async (errors, `WaitOutcome`, `WaitAnyOutcome`, `Step`) is `#[non_exhaustive]`, so a match without a wildcard arm does not compile (the compile-fail examples in the rustdoc of `Step` and `WaitOutcome`) and one with it compiles under `deny(warnings)` (crates/rgi-async/tests/evolution.rs: `d7_step_is_matched_with_a_wildcard_arm`, `d7_wait_outcomes_are_matched_with_a_wildcard_arm`); what the wildcard arm does is application logic.",
    ),
    (
        "RGIA-VER-5",
        "A rule on which crate defines a facility, decided by reading the server's API: the types of rgi-async can change behaviour at run time only through their service traits, whose behaviour the READY, OFFLOAD and AFTER cases judge.",
    ),
];
