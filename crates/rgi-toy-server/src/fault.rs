//! Deliberate faults: each switches on one way of breaking one clause, so
//! that the suite can be shown to catch a broken server with the expected
//! clause ID.

use serde::Serialize;

/// One deliberate fault of the toy server ([`ToyServer::with_fault`]).
///
/// Each variant breaks the clause its documentation names and behaves
/// correctly otherwise, as far as one rule can be broken alone.
/// [`Fault::clause`] gives the clause, [`Fault::case`] the suite case that
/// catches it, and [`FAULTS`] the whole table. Where a fault exists for
/// both kinds of application, one variant breaks the synchronous path and
/// its twin the asynchronous one, so that each suite case has a fault of
/// its own.
///
/// [`ToyServer::with_fault`]: super::ToyServer::with_fault
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum Fault {
    /// Writes the head as soon as the application stores it, before any body data. Breaks
    /// `RGI-START-6`.
    SendsHeadEarly,
    /// Sends the first head the application stored even after it replaced it. Breaks `RGI-START-6`.
    KeepsFirstHead,
    /// Sends a status without a canonical reason phrase as the first code of its class (`599` as
    /// `500`). Breaks `RGI-START-2`.
    MapsUnknownStatus,
    /// Treats a response not started by the end of `call` as a failure. Breaks `RGI-START-5`.
    RequiresStartInCall,
    /// Sends the head of a second, rejected `start` instead of the first one. Breaks `RGI-START-8`.
    SecondStartWins,
    /// Writes the status line of a `replace` that came after the head was sent into the body.
    /// Breaks `RGI-START-11`.
    ReplaceAfterHeadSendsHead,
    /// Holds data the application writes until the body ends. Breaks `RGI-WRITE-2`.
    HoldsWrittenData,
    /// Sends data the application writes after the next chunk instead of before it. Breaks
    /// `RGI-WRITE-3`.
    ReordersWrittenData,
    /// Replaces body bytes 0x80 to 0xFF with `?`. Breaks `RGI-BODY-3`.
    MasksHighBytes,
    /// Collects the whole response and writes it when the body ends: no chunk reaches the client
    /// while the application works (synchronous applications; [`Fault::BuffersAsyncResponse`] for
    /// asynchronous ones). Breaks `RGI-BODY-4`.
    BuffersWholeResponse,
    /// Queues output without limit for a writer thread, so a client that does not read never slows
    /// the application down (synchronous applications; [`Fault::UnboundedAsyncOutput`] for
    /// asynchronous ones). Breaks `RGI-BODY-4`.
    UnboundedOutputQueue,
    /// Sends a zero-size chunk for an empty chunk, ending the body early (synchronous applications;
    /// [`Fault::ZeroChunkOnEmptyAsync`] for asynchronous ones). Breaks `RGI-BODY-6`.
    ZeroChunkOnEmpty,
    /// Keeps every body until its connection closes instead of dropping it when the response is
    /// complete (synchronous applications; [`Fault::DropsAsyncBodyLate`] for asynchronous ones).
    /// Breaks `RGI-BODY-12`.
    DropsBodyLate,
    /// Sends the body of a response to a HEAD request (synchronous applications;
    /// [`Fault::BodyOnHeadAsync`] for asynchronous ones). Breaks `RGI-BODY-15`.
    BodyOnHead,
    /// Drops the application's `content-length` from the head of a response to HEAD. Breaks
    /// `RGI-BODY-15`.
    HeadLosesContentLength,
    /// Sends what the body yields after a 204 or 304 head. Breaks `RGI-BODY-18`.
    BodyOn204,
    /// Sends a file body's file directly without recording it with `advance`, then pulls the body,
    /// which sends it again. Breaks `RGI-FILE-2`.
    FileSentTwice,
    /// Sends a file body's whole file, ignoring its offset and length. Breaks `RGI-FILE-5`.
    FileIgnoresRange,
    /// Pads a body shorter than its Content-Length with zero bytes and keeps the connection. Breaks
    /// `RGI-FILE-5`.
    PadsShortBody,
    /// Sends what the body yields beyond the declared Content-Length. Breaks `RGI-CL-1`.
    SendsPastContentLength,
    /// Keeps the connection after a body shorter than its Content-Length. Breaks `RGI-CL-3`.
    KeepsAliveAfterShortBody,
    /// Sends `transfer-encoding: chunked` alongside a Content-Length. Breaks `RGI-CL-9`.
    LengthAndChunked,
    /// Uses the chunked coding in responses to HTTP/1.0 requests. Breaks `RGI-CL-8`.
    ChunkedOnHttp10,
    /// Sends no `Date` field. Breaks `RGI-HEAD-9`.
    NoDate,
    /// Joins response fields of the same name into one line. Breaks `RGI-HEAD-8`.
    JoinsResponseFields,
    /// Upper-cases the request method. Breaks `RGI-ENV-3`.
    UppercasesMethod,
    /// Decodes percent-encoded unreserved characters of the request target (`%41` becomes `A`).
    /// Breaks `RGI-ENV-4`.
    DecodesTarget,
    /// Reports port 80 as the server port. Breaks `RGI-ENV-5`.
    WrongServerPort,
    /// Leaves out the peer's address. Breaks `RGI-ENV-6`.
    MissingRemoteAddr,
    /// Reports `https` for plain connections. Breaks `RGI-ENV-7`.
    WrongScheme,
    /// Reports a single-threaded server although it runs requests on several threads. Breaks
    /// `RGI-ENV-8`.
    WrongConcurrency,
    /// Reads a chunked body before calling the application and reports its length as the content
    /// length. Breaks `RGI-ENV-10`.
    PreReadsChunkedBody,
    /// Closes the connection without an answer when a request head is malformed. Breaks
    /// `RGI-ENV-1`.
    SilentOnMalformed,
    /// Treats the first path segment as the mount point of an application mounted at the root.
    /// Breaks `RGI-PATH-1`.
    MountsAtFirstSegment,
    /// Merges repeated slashes in the request path before building the environ. Breaks
    /// `RGI-PATH-3`.
    NormalisesPath,
    /// Answers 500 instead of 400 when the client's target cannot make an environ. Breaks
    /// `RGI-PATH-3`.
    EnvironErrorIs500,
    /// Decodes `%2F` into a segment separator before splitting the path. Breaks `RGI-PATH-4`.
    DecodesEncodedSlash,
    /// Answers 400 to a path whose decoded bytes are not UTF-8. Breaks `RGI-PATH-5`.
    RejectsNonUtf8Path,
    /// Answers every request with the target `*` itself with `200 OK`, whatever its method. Breaks
    /// `RGI-PATH-8`.
    AnswersEveryAsterisk,
    /// Keeps the Host field received with an absolute-form target instead of the target's
    /// authority. Breaks `RGI-PATH-9`.
    KeepsHostForAbsoluteForm,
    /// Answers CONNECT with 400 instead of 405 or 501. Breaks `RGI-PATH-10`.
    ConnectGets400,
    /// Adds an `x-forwarded-for` field the client did not send. Breaks `RGI-HDR-1`.
    InventsField,
    /// Joins repeated request fields into one comma-separated entry. Breaks `RGI-HDR-2`.
    JoinsRequestFields,
    /// Transcodes obs-text in request field values from Latin-1 to UTF-8. Breaks `RGI-HDR-3`.
    TranscodesFieldValues,
    /// Removes `content-length` from the request's fields. Breaks `RGI-HDR-4`.
    DropsContentLengthField,
    /// Ignores a malformed or conflicting Content-Length instead of answering 400: the request has
    /// no body. Breaks `RGI-HDR-4`.
    LenientContentLength,
    /// Answers 400 instead of 501 to a transfer coding it does not implement. Breaks `RGI-HDR-4`.
    UnknownCodingIs400,
    /// Frames a request with both Content-Length and Transfer-Encoding by its Content-Length.
    /// Breaks `RGI-HDR-4`.
    LengthWinsOverChunked,
    /// Passes an HTTP/1.1 request without a Host field to the application. Breaks `RGI-HDR-5`.
    AcceptsMissingHost,
    /// Accepts a Host field whose port is larger than 65535. Breaks `RGI-PROTO-1`.
    AcceptsAnyHostPort,
    /// Serves an absolute-form target whose Host field names another authority. Breaks `RGI-PROTO-2`.
    IgnoresHostMismatch,
    /// Frames a body by the first `chunked` and ignores the codings after it (`chunked, identity`). Breaks `RGI-PROTO-3`.
    ChunkedNotLastIsChunked,
    /// Reads `Content-Length: +5` as 5, as Rust's integer parsing does. Breaks `RGI-PROTO-4`.
    PlusSignContentLength,
    /// Ignores expectations other than `100-continue` instead of answering 417. Breaks `RGI-PROTO-5`.
    IgnoresUnknownExpect,
    /// Serves an authority-form target with a method other than CONNECT as the path `/`. Breaks `RGI-PROTO-6`.
    AcceptsAuthorityForm,
    /// Serves a request line of any HTTP version as HTTP/1.1 (`HTTP/2.0` included). Breaks `RGI-PROTO-7`.
    AnyVersionIsHttp11,
    /// Joins an obs-fold continuation line to the field before it instead of answering 400. Breaks `RGI-PROTO-8`.
    UnfoldsObsFold,
    /// Accepts several spaces between the parts of the request line. Breaks `RGI-PROTO-9`.
    LenientRequestLine,
    /// After answering a refused head, without `connection: close`, reads the bytes after it as the next request. Breaks `RGI-PROTO-10`.
    KeepsConnectionAfterRefusal,
    /// Has no limit on the length of the request target. Breaks `RGI-LIMIT-2`.
    NoTargetLimit,
    /// Has no limit on the number of field lines. Breaks `RGI-LIMIT-3`.
    NoFieldCountLimit,
    /// Calls the application for a declared body over the body limit. Breaks `RGI-LIMIT-4`.
    ReadsOversizedBody,
    /// Closes without a response when a head that had started stalls. Breaks `RGI-LIMIT-5`.
    StalledHeadClosesSilently,
    /// Sends 408 when it closes an idle kept connection. Breaks `RGI-LIMIT-6`.
    IdleCloseSends408,
    /// Puts the length of an exact size hint into the head in its sink instead of declaring it to the response state, so a head started lazily without Content-Length gets the field and nothing holds the body to it. Breaks `RGI-CL-10`.
    SinkAddsHintedLength,
    /// Fails the reads of a malformed or oversized chunked body with a plain `io::Error` instead of the typed `InputError`, so an application that propagates it gets a 500. Breaks `RGI-INPUT-17`.
    UntypedBodyErrors,
    /// Answers 500 when the application propagates the client's typed body error before its head, instead of the status the error names. Breaks `RGI-FAIL-10`.
    ClientErrorIs500,
    /// Answers the 408 of a stalled body without `connection: close`. Breaks `RGI-LIMIT-7`.
    StalledBodyKeepsConnection,
    /// Sends `100 Continue` at the first read of the body even when the final head has already gone out. Breaks `RGI-INPUT-13`.
    ContinueAfterHead,
    /// Sends `100 Continue` to an HTTP/1.0 request that carries `Expect: 100-continue`. Breaks `RGI-INPUT-23`.
    ContinueOnHttp10,
    /// Gives an application that declares `InputUse::None` an input without the body. Breaks
    /// `RGI-HINT-6`.
    HintsSkipTheBody,
    /// Serves one request at a time, whatever the connection (synchronous applications;
    /// [`Fault::OneAsyncRequestAtATime`] for asynchronous ones). Breaks `RGI-HINT-5`.
    OneRequestAtATime,
    /// Consumes four more bytes after a Content-Length body, as if a blank line ended it
    /// (synchronous applications; [`Fault::SkipsBytesAfterAsyncBody`] for asynchronous ones).
    /// Breaks `RGI-INPUT-3`.
    SkipsBytesAfterBody,
    /// Stops decoding a chunked body at its last chunk, leaving the trailer section on the
    /// connection. Breaks `RGI-INPUT-2`.
    TrailersLeftOnConnection,
    /// A chunked upload that ends early reads as a normal end of body (synchronous applications;
    /// [`Fault::AsyncTruncationLooksLikeEof`] for asynchronous ones). Breaks `RGI-INPUT-2`.
    TruncationLooksLikeEof,
    /// Reads a Content-Length body before calling the application and, when it ends early, passes
    /// on what arrived as the whole body. Breaks `RGI-INPUT-5`.
    PreReadsTruncatedBody,
    /// Never sends `100 Continue`; the client must give up waiting first. Breaks `RGI-INPUT-12`.
    NeverSendsContinue,
    /// Sends `100 Continue` as soon as the head arrives, even if nobody ever reads the body
    /// (synchronous applications; [`Fault::EagerContinueAsync`] for asynchronous ones). Breaks
    /// `RGI-INPUT-13`.
    EagerContinue,
    /// Lets an input outlive its response: a read after the response reads on from the connection
    /// (synchronous applications; [`Fault::AsyncInputOutlivesResponse`] for asynchronous ones).
    /// Breaks `RGI-INPUT-15`.
    InputOutlivesResponse,
    /// A panic in `call` takes the server down: after its 500 it accepts no more connections.
    /// Breaks `RGI-FAIL-2`.
    PanicInCallKillsServer,
    /// A panic in `next_chunk` after the head was sent takes the server down: it accepts no more
    /// connections. Breaks `RGI-FAIL-2`.
    PanicInBodyKillsServer,
    /// A panic in a body's `Drop` takes the server down: it accepts no more connections. Breaks
    /// `RGI-FAIL-2`.
    PanicInDropKillsServer,
    /// Answers an application failure before the head with `200 OK` and an empty body instead of
    /// 500 (synchronous applications; [`Fault::AsyncFailureIsNot500`] for asynchronous ones).
    /// Breaks `RGI-FAIL-3`.
    FailureIsNot500,
    /// Puts the application's error message in the body of its 500. Breaks `RGI-FAIL-4`.
    LeaksErrorDetail,
    /// After a failure once the head was sent, ends the response normally (the last-chunk), so the
    /// client cannot tell it is incomplete. Breaks `RGI-FAIL-5`.
    CompletesFailedResponse,
    /// After a failure once the head was sent, writes an error message into the body before
    /// closing. Breaks `RGI-FAIL-6`.
    AppendsErrorText,
    /// Starts a `200 OK` itself when a body yields data or ends without having started the
    /// response. Breaks `RGI-FAIL-7`.
    StartsDefaultHead,
    /// When a send fails because the client went away, pretends it worked and keeps pulling the
    /// body (synchronous applications; [`Fault::KeepsAsyncBodyAfterDisconnect`] for asynchronous
    /// ones). Breaks `RGI-FAIL-8`.
    KeepsBodyAfterDisconnect,
    /// `write` reports success after the client went away. Breaks `RGI-FAIL-8`.
    WriteIgnoresDisconnect,
    /// After the response, leaves an unread Content-Length body on the connection, so its bytes are
    /// parsed as the next request. Breaks `RGI-CONN-1`.
    LeaksUnreadBody,
    /// After the response, leaves an unread chunked body on the connection, so its bytes are parsed
    /// as the next request. Breaks `RGI-CONN-1`.
    LeaksUnreadChunkedBody,
    /// Closes every connection after one response without saying `connection: close`. Breaks
    /// `RGI-CONN-2`.
    ClosesSilently,
    /// Keeps the connection although the client sent `Connection: close`. Breaks `RGI-CONN-2`.
    IgnoresConnectionClose,
    /// Throws away pipelined requests that arrived while a response was under way. Breaks
    /// `RGI-CONN-3`.
    DropsPipelinedRequests,
    /// Adds the previous request's fields to the next request on the same connection. Breaks
    /// `RGI-CONN-4`.
    LeaksFieldsToNextRequest,
    /// `stop` closes the listener but leaves open connections and their responses running. Breaks
    /// `RGI-CONN-5`.
    StopLeavesConnectionsOpen,
    /// Puts no capabilities into the environ of asynchronous applications. Breaks `RGIA-CAP-1`.
    NoCapabilities,
    /// Offers capabilities to every application, with an offload service that refuses every job.
    /// Breaks `RGIA-CAP-3`.
    HollowOffload,
    /// Calls the asynchronous application twice per request: once, unanswered, with a copy of the
    /// request without its body. Breaks `RGIA-APP-1`.
    CallsTwice,
    /// When the application's `call` returns `Err`, calls it once more for the same request, with
    /// a rebuilt environ and the same `StartResponse` over the same `ResponseState`, and serves
    /// what the second call returns (a server that "retries" a cold cache for its client). Unlike
    /// the paired faults it acts on synchronous and asynchronous applications alike, so its one
    /// case is the synchronous one; `rgia_app_1_a_failed_call_is_not_retried` catches its
    /// asynchronous half under `RGIA-APP-1` (`tests/toy_faults.rs`). Breaks `RGI-APP-5`.
    RetriesFailedCall,
    /// Closes the connection without an answer when `AsyncApplication::call` fails. Breaks
    /// `RGIA-APP-4`.
    AsyncCallFailureDropsConnection,
    /// Passes on a body's wake-up only when it is made on one of the server's own threads (its
    /// connections, workers, helpers and poller); a wake-up from a thread of the application is
    /// lost. Breaks `RGIA-POLL-3`.
    IgnoresForeignWakeUps,
    /// Polls a pending body again at once, in a loop. Breaks `RGIA-POLL-4`.
    BusyPolling,
    /// Panics, on the waking thread, when a body's waker is woken after the body ended. Breaks
    /// `RGIA-POLL-5`.
    LateWakePanics,
    /// Polls a body once more after it ended. Breaks `RGIA-POLL-6`.
    PollsAfterEnd,
    /// Keeps asynchronous bodies until their connection closes (the asynchronous twin of
    /// [`Fault::DropsBodyLate`]). Breaks `RGIA-POLL-7`.
    DropsAsyncBodyLate,
    /// When a send fails because the client went away, pretends it worked and keeps polling the
    /// asynchronous body (the asynchronous twin of [`Fault::KeepsBodyAfterDisconnect`]). Breaks
    /// `RGIA-POLL-7`.
    KeepsAsyncBodyAfterDisconnect,
    /// Answers a failure of an asynchronous body before the head with `200 OK` instead of 500 (the
    /// asynchronous twin of [`Fault::FailureIsNot500`]). Breaks `RGI-FAIL-3`.
    AsyncFailureIsNot500,
    /// Serves one asynchronous request at a time, whatever the connection (the asynchronous twin of
    /// [`Fault::OneRequestAtATime`]). Breaks `RGIA-TASK-1`.
    OneAsyncRequestAtATime,
    /// `stop` ends parked asynchronous bodies but keeps them, undropped, until the server is
    /// dropped. Breaks `RGIA-TASK-4`.
    StopLeavesParkedBodies,
    /// Collects an asynchronous body's whole response and writes it when the body ends (the
    /// asynchronous twin of [`Fault::BuffersWholeResponse`]). Breaks `RGIA-OUT-4`.
    BuffersAsyncResponse,
    /// Sends a zero-size chunk for an empty chunk of an asynchronous body (the asynchronous twin of
    /// [`Fault::ZeroChunkOnEmpty`]). Breaks `RGIA-OUT-6`.
    ZeroChunkOnEmptyAsync,
    /// Queues an asynchronous body's output without limit for a writer thread (the asynchronous
    /// twin of [`Fault::UnboundedOutputQueue`]). Breaks `RGIA-OUT-2`.
    UnboundedAsyncOutput,
    /// Sends the body of an asynchronous response to a HEAD request (the asynchronous twin of
    /// [`Fault::BodyOnHead`]). Breaks `RGIA-OUT-9`.
    BodyOnHeadAsync,
    /// Gives asynchronous applications a blocking-only input. Breaks `RGIA-INPUT-1`.
    BlockingInputForAsync,
    /// Answers a non-blocking read only once it has `max` bytes or the body ended. Breaks
    /// `RGIA-INPUT-3`.
    FillsAsyncReads,
    /// Consumes four more bytes after an asynchronous request's Content-Length body (the
    /// asynchronous twin of [`Fault::SkipsBytesAfterBody`]). Breaks `RGI-CONN-3`.
    SkipsBytesAfterAsyncBody,
    /// A chunked upload to an asynchronous application that ends early reads as a normal end of
    /// body (the asynchronous twin of [`Fault::TruncationLooksLikeEof`]). Breaks `RGI-INPUT-2`.
    AsyncTruncationLooksLikeEof,
    /// Reads an asynchronous request's whole Content-Length body before calling the application.
    /// Breaks `RGIA-INPUT-10`.
    PreReadsAsyncBody,
    /// Sends `100 Continue` to asynchronous requests as soon as the head arrives (the asynchronous
    /// twin of [`Fault::EagerContinue`]). Breaks `RGIA-INPUT-11`.
    EagerContinueAsync,
    /// Lets an asynchronous request's input read on from the connection after its response (the
    /// asynchronous twin of [`Fault::InputOutlivesResponse`]). Breaks `RGIA-INPUT-16`.
    AsyncInputOutlivesResponse,
    /// Runs offload jobs on the calling thread. Breaks `RGIA-OFFLOAD-1`.
    InlineOffload,
    /// Runs offload jobs on two workers, and when both are busy `execute` waits for one to be
    /// free instead of refusing with `Saturated`. Breaks `RGIA-OFFLOAD-2`.
    BlockingOffload,
    /// Goes on accepting and running offload jobs after `stop`. Breaks `RGIA-OFFLOAD-9`.
    OffloadAfterShutdown,
    /// Treats a `Switch` step as the end of the body and never runs the continuation. Breaks
    /// `RGIA-SWITCH-1`.
    IgnoresSwitch,
    /// Drops the asynchronous body only after the switch's continuation has run. Breaks
    /// `RGIA-SWITCH-2`.
    KeepsAsyncBodyDuringSwitch,
    /// Replaces a stored head with a bare `200 OK` before running the switch's continuation. Breaks
    /// `RGIA-SWITCH-4`.
    SwitchForgetsStoredHead,
    /// Sends the last chunk before a switch again after it. Breaks `RGIA-SWITCH-4`.
    SwitchRepeatsOutput,
    /// Answers a failed switch continuation with `200 OK` and an empty body. Breaks
    /// `RGIA-SWITCH-5`.
    SwitchFailureIsNot500,
    /// Loses a piece of the request body after a switch. Breaks `RGIA-SWITCH-6`.
    SwitchDropsReadAhead,
    /// Runs after-response tasks as soon as they are spawned. Breaks `RGIA-AFTER-1`.
    AfterTasksBeforeResponse,
    /// Drops after-response tasks unrun. Breaks `RGIA-AFTER-1`.
    AfterTasksDropped,
    /// A panicking after-response task takes the server down. Breaks `RGIA-AFTER-2`.
    AfterTaskPanicKillsServer,
    /// Refuses after-response tasks at shutdown with `AfterError::Rejected`, which says the queue
    /// is full, instead of `ShutDown`. Breaks `RGIA-AFTER-5`.
    AfterShutdownLooksRejected,
    /// Offers the upgrade on requests whose `Connection` field does not list `upgrade`. Breaks
    /// `RGIA-UPGRADE-1`.
    UpgradeWithoutConnectionField,
    /// Accepts an upgrade after the head was sent and writes the 101 into the response. Breaks
    /// `RGIA-UPGRADE-2`.
    UpgradeAfterHead,
    /// Upgrades to the first of several offered protocols when the application chose none. Breaks
    /// `RGIA-UPGRADE-3`.
    UpgradePicksFirstOffer,
    /// Loses the bytes the client sent right after its upgrade request. Breaks `RGIA-UPGRADE-4`.
    UpgradeDropsBufferedBytes,
    /// Writes HTTP body data an upgraded body yields onto the upgraded connection. Breaks
    /// `RGIA-UPGRADE-6`.
    SendsHttpAfterUpgrade,
    /// Ignores a failure to write the 101 and resolves `Upgraded` with a stream over the dead
    /// connection. Breaks `RGIA-UPGRADE-9`.
    UpgradeHidesFailedHandOver,
    /// Readiness waits resolve only when their timeout expires. Breaks `RGIA-READY-1`.
    ReadinessIgnoresReadiness,
    /// A wait on a descriptor that is already ready waits for its timeout instead of resolving.
    /// Breaks `RGIA-READY-2`.
    EdgeTriggeredReadiness,
    /// A wait whose descriptor hung up or failed goes on waiting for its timeout. Breaks
    /// `RGIA-READY-6`.
    HangupIgnored,
    /// Readiness waits never time out. Breaks `RGIA-READY-7`.
    NoReadinessTimeout,
    /// A wait on a regular file or a directory resolves as readable. Breaks `RGIA-READY-10`.
    FilesLookReady,
    /// A wait dropped before it resolved leaves something behind that swallows the next readiness
    /// of its descriptor. Breaks `RGIA-READY-12`.
    DroppedWaitsLinger,
    /// `wait_any` reports the wrong index for the ready source. Breaks `RGIA-READY-16`.
    WaitAnyWrongIndex,
    /// Keys readiness waits by descriptor number: a wait leaked without being dropped keeps its
    /// number, and a later wait on a new descriptor with that number joins the stale registration
    /// and never sees readiness. Breaks `RGIA-READY-13`.
    LeakedWaitsKeepTheirNumber,
    /// When `stop` cancels a request parked in a readiness wait, switches the waited-on
    /// descriptor to non-blocking and reads away what is pending on it. Breaks `RGIA-TASK-5`.
    ShutdownDrainsWaitedDescriptors,
    /// Each readiness wait holds a duplicate of its descriptor until its future is dropped, so a
    /// leaked wait keeps the application's socket open after the application closed it. Breaks
    /// `RGIA-READY-19`.
    WaitsHoldDuplicates,
    /// Builds each request's server description afresh, without the optional features the toy claims
    /// (and without the start-up state). Breaks `RGI-FEAT-1`.
    ForgetsDeclaredFeatures,
    /// Reports the end of a chunked body at its last-chunk and reads the trailer section only when it
    /// drains the connection, after the application saw the end. Breaks `RGI-TRAILER-1`.
    TrailersFilledAfterTheEnd,
    /// Collects request trailer fields per connection and never clears them, so a request gets the
    /// trailers of the requests before it on the connection. Breaks `RGI-TRAILER-1`.
    RequestTrailersLeak,
    /// Reads a chunked body before calling the application and adds its trailer fields, forbidden ones
    /// included, to the request's header fields. Breaks `RGI-TRAILER-1`.
    TrailersIntoHeaders,
    /// Enables response trailers on every HTTP/1.1 request, whether or not it carried `TE: trailers`.
    /// Breaks `RGI-TRAILER-7`.
    TrailersWithoutTe,
    /// Enables response trailers on HTTP/1.0 requests that carry `TE: trailers`, and writes them after
    /// the close-delimited body. Breaks `RGI-TRAILER-7`.
    TrailersOnHttp10,
    /// Declares response trailers and enables them, but its sink drops the fields it is handed. Breaks
    /// `RGI-TRAILER-7`.
    DropsResponseTrailers,
    /// Puts the length of an exact size hint into every head without one from its sink, a head that
    /// announces trailers included. Breaks `RGI-TRAILER-6`.
    LengthOnTrailerHead,
    /// Enables early hints on HTTP/1.0 requests too. Breaks `RGI-EARLY-3`.
    EarlyHintsOnHttp10,
    /// Holds every `103 Early Hints` back and writes it just before the final head. Breaks `RGI-
    /// EARLY-3`.
    EarlyHintsHeldBack,
    /// Writes an early hint the application attempts after the final head went out, into the body.
    /// Breaks `RGI-EARLY-3`.
    EarlyHintsAfterHead,
    /// Treats the head stored before an early hint as final: a later replacement of it is ignored.
    /// Breaks `RGI-EARLY-3`.
    HintsPinTheHead,
    /// Declares early hints but never enables them, so every hint is dropped. Breaks `RGI-EARLY-4`.
    EarlyHintsNeverSent,
    /// Declares lifespan but never calls a synchronous application's start-up (nor its shut-down);
    /// [`Fault::SkipsAsyncStartup`] for asynchronous ones. Breaks `RGI-LIFE-1`.
    SkipsStartup,
    /// Calls the application's start-up lazily, after its first response. Breaks `RGI-LIFE-1`.
    StartupAfterFirstRequest,
    /// Logs a failed start-up and serves the application anyway. Breaks `RGI-LIFE-2`.
    ServesAfterFailedStartup,
    /// Never calls the application's shut-down when it stops. Breaks `RGI-LIFE-3`.
    NoShutdown,
    /// Calls the application's shut-down twice when it stops. Breaks `RGI-LIFE-3`.
    ShutdownTwice,
    /// Declares lifespan but never calls an asynchronous application's start-up (the asynchronous twin
    /// of [`Fault::SkipsStartup`]). Breaks `RGIA-LIFE-1`.
    SkipsAsyncStartup,
    /// Holds back the chunks of a `text/event-stream` response until the body ends. Breaks `RGI-
    /// SSE-3`.
    BuffersEventStreams,
}

impl Fault {
    /// Every fault.
    pub const ALL: &'static [Fault] = &[
        Fault::SendsHeadEarly,
        Fault::KeepsFirstHead,
        Fault::MapsUnknownStatus,
        Fault::RequiresStartInCall,
        Fault::SecondStartWins,
        Fault::ReplaceAfterHeadSendsHead,
        Fault::HoldsWrittenData,
        Fault::ReordersWrittenData,
        Fault::MasksHighBytes,
        Fault::BuffersWholeResponse,
        Fault::UnboundedOutputQueue,
        Fault::ZeroChunkOnEmpty,
        Fault::DropsBodyLate,
        Fault::BodyOnHead,
        Fault::HeadLosesContentLength,
        Fault::BodyOn204,
        Fault::FileSentTwice,
        Fault::FileIgnoresRange,
        Fault::PadsShortBody,
        Fault::SendsPastContentLength,
        Fault::KeepsAliveAfterShortBody,
        Fault::LengthAndChunked,
        Fault::ChunkedOnHttp10,
        Fault::NoDate,
        Fault::JoinsResponseFields,
        Fault::UppercasesMethod,
        Fault::DecodesTarget,
        Fault::WrongServerPort,
        Fault::MissingRemoteAddr,
        Fault::WrongScheme,
        Fault::WrongConcurrency,
        Fault::PreReadsChunkedBody,
        Fault::SilentOnMalformed,
        Fault::MountsAtFirstSegment,
        Fault::NormalisesPath,
        Fault::EnvironErrorIs500,
        Fault::DecodesEncodedSlash,
        Fault::RejectsNonUtf8Path,
        Fault::AnswersEveryAsterisk,
        Fault::KeepsHostForAbsoluteForm,
        Fault::ConnectGets400,
        Fault::InventsField,
        Fault::JoinsRequestFields,
        Fault::TranscodesFieldValues,
        Fault::DropsContentLengthField,
        Fault::LenientContentLength,
        Fault::UnknownCodingIs400,
        Fault::LengthWinsOverChunked,
        Fault::AcceptsMissingHost,
        Fault::AcceptsAnyHostPort,
        Fault::IgnoresHostMismatch,
        Fault::ChunkedNotLastIsChunked,
        Fault::PlusSignContentLength,
        Fault::IgnoresUnknownExpect,
        Fault::AcceptsAuthorityForm,
        Fault::AnyVersionIsHttp11,
        Fault::UnfoldsObsFold,
        Fault::LenientRequestLine,
        Fault::KeepsConnectionAfterRefusal,
        Fault::NoTargetLimit,
        Fault::NoFieldCountLimit,
        Fault::ReadsOversizedBody,
        Fault::StalledHeadClosesSilently,
        Fault::IdleCloseSends408,
        Fault::SinkAddsHintedLength,
        Fault::UntypedBodyErrors,
        Fault::ClientErrorIs500,
        Fault::StalledBodyKeepsConnection,
        Fault::ContinueAfterHead,
        Fault::ContinueOnHttp10,
        Fault::HintsSkipTheBody,
        Fault::OneRequestAtATime,
        Fault::SkipsBytesAfterBody,
        Fault::TrailersLeftOnConnection,
        Fault::TruncationLooksLikeEof,
        Fault::PreReadsTruncatedBody,
        Fault::NeverSendsContinue,
        Fault::EagerContinue,
        Fault::InputOutlivesResponse,
        Fault::PanicInCallKillsServer,
        Fault::PanicInBodyKillsServer,
        Fault::PanicInDropKillsServer,
        Fault::FailureIsNot500,
        Fault::LeaksErrorDetail,
        Fault::CompletesFailedResponse,
        Fault::AppendsErrorText,
        Fault::StartsDefaultHead,
        Fault::KeepsBodyAfterDisconnect,
        Fault::WriteIgnoresDisconnect,
        Fault::LeaksUnreadBody,
        Fault::LeaksUnreadChunkedBody,
        Fault::ClosesSilently,
        Fault::IgnoresConnectionClose,
        Fault::DropsPipelinedRequests,
        Fault::LeaksFieldsToNextRequest,
        Fault::StopLeavesConnectionsOpen,
        Fault::NoCapabilities,
        Fault::HollowOffload,
        Fault::CallsTwice,
        Fault::RetriesFailedCall,
        Fault::AsyncCallFailureDropsConnection,
        Fault::IgnoresForeignWakeUps,
        Fault::BusyPolling,
        Fault::LateWakePanics,
        Fault::PollsAfterEnd,
        Fault::DropsAsyncBodyLate,
        Fault::KeepsAsyncBodyAfterDisconnect,
        Fault::AsyncFailureIsNot500,
        Fault::OneAsyncRequestAtATime,
        Fault::StopLeavesParkedBodies,
        Fault::BuffersAsyncResponse,
        Fault::ZeroChunkOnEmptyAsync,
        Fault::UnboundedAsyncOutput,
        Fault::BodyOnHeadAsync,
        Fault::BlockingInputForAsync,
        Fault::FillsAsyncReads,
        Fault::SkipsBytesAfterAsyncBody,
        Fault::AsyncTruncationLooksLikeEof,
        Fault::PreReadsAsyncBody,
        Fault::EagerContinueAsync,
        Fault::AsyncInputOutlivesResponse,
        Fault::InlineOffload,
        Fault::BlockingOffload,
        Fault::OffloadAfterShutdown,
        Fault::IgnoresSwitch,
        Fault::KeepsAsyncBodyDuringSwitch,
        Fault::SwitchForgetsStoredHead,
        Fault::SwitchRepeatsOutput,
        Fault::SwitchFailureIsNot500,
        Fault::SwitchDropsReadAhead,
        Fault::AfterTasksBeforeResponse,
        Fault::AfterTasksDropped,
        Fault::AfterTaskPanicKillsServer,
        Fault::AfterShutdownLooksRejected,
        Fault::UpgradeWithoutConnectionField,
        Fault::UpgradeAfterHead,
        Fault::UpgradePicksFirstOffer,
        Fault::UpgradeDropsBufferedBytes,
        Fault::SendsHttpAfterUpgrade,
        Fault::UpgradeHidesFailedHandOver,
        Fault::ReadinessIgnoresReadiness,
        Fault::EdgeTriggeredReadiness,
        Fault::HangupIgnored,
        Fault::NoReadinessTimeout,
        Fault::FilesLookReady,
        Fault::DroppedWaitsLinger,
        Fault::WaitAnyWrongIndex,
        Fault::LeakedWaitsKeepTheirNumber,
        Fault::ShutdownDrainsWaitedDescriptors,
        Fault::WaitsHoldDuplicates,
        Fault::ForgetsDeclaredFeatures,
        Fault::TrailersFilledAfterTheEnd,
        Fault::RequestTrailersLeak,
        Fault::TrailersIntoHeaders,
        Fault::TrailersWithoutTe,
        Fault::TrailersOnHttp10,
        Fault::DropsResponseTrailers,
        Fault::LengthOnTrailerHead,
        Fault::EarlyHintsOnHttp10,
        Fault::EarlyHintsHeldBack,
        Fault::EarlyHintsAfterHead,
        Fault::HintsPinTheHead,
        Fault::EarlyHintsNeverSent,
        Fault::SkipsStartup,
        Fault::StartupAfterFirstRequest,
        Fault::ServesAfterFailedStartup,
        Fault::NoShutdown,
        Fault::ShutdownTwice,
        Fault::SkipsAsyncStartup,
        Fault::BuffersEventStreams,
    ];

    /// The clause the fault breaks.
    #[must_use]
    pub const fn clause(self) -> &'static str {
        match self {
            Fault::SendsHeadEarly => "RGI-START-6",
            Fault::KeepsFirstHead => "RGI-START-6",
            Fault::MapsUnknownStatus => "RGI-START-2",
            Fault::RequiresStartInCall => "RGI-START-5",
            Fault::SecondStartWins => "RGI-START-8",
            Fault::ReplaceAfterHeadSendsHead => "RGI-START-11",
            Fault::HoldsWrittenData => "RGI-WRITE-2",
            Fault::ReordersWrittenData => "RGI-WRITE-3",
            Fault::MasksHighBytes => "RGI-BODY-3",
            Fault::BuffersWholeResponse => "RGI-BODY-4",
            Fault::UnboundedOutputQueue => "RGI-BODY-4",
            Fault::ZeroChunkOnEmpty => "RGI-BODY-6",
            Fault::DropsBodyLate => "RGI-BODY-12",
            Fault::BodyOnHead => "RGI-BODY-15",
            Fault::HeadLosesContentLength => "RGI-BODY-15",
            Fault::BodyOn204 => "RGI-BODY-18",
            Fault::FileSentTwice => "RGI-FILE-2",
            Fault::FileIgnoresRange => "RGI-FILE-5",
            Fault::PadsShortBody => "RGI-FILE-5",
            Fault::SendsPastContentLength => "RGI-CL-1",
            Fault::KeepsAliveAfterShortBody => "RGI-CL-3",
            Fault::LengthAndChunked => "RGI-CL-9",
            Fault::ChunkedOnHttp10 => "RGI-CL-8",
            Fault::NoDate => "RGI-HEAD-9",
            Fault::JoinsResponseFields => "RGI-HEAD-8",
            Fault::UppercasesMethod => "RGI-ENV-3",
            Fault::DecodesTarget => "RGI-ENV-4",
            Fault::WrongServerPort => "RGI-ENV-5",
            Fault::MissingRemoteAddr => "RGI-ENV-6",
            Fault::WrongScheme => "RGI-ENV-7",
            Fault::WrongConcurrency => "RGI-ENV-8",
            Fault::PreReadsChunkedBody => "RGI-ENV-10",
            Fault::SilentOnMalformed => "RGI-ENV-1",
            Fault::MountsAtFirstSegment => "RGI-PATH-1",
            Fault::NormalisesPath => "RGI-PATH-3",
            Fault::EnvironErrorIs500 => "RGI-PATH-3",
            Fault::DecodesEncodedSlash => "RGI-PATH-4",
            Fault::RejectsNonUtf8Path => "RGI-PATH-5",
            Fault::AnswersEveryAsterisk => "RGI-PATH-8",
            Fault::KeepsHostForAbsoluteForm => "RGI-PATH-9",
            Fault::ConnectGets400 => "RGI-PATH-10",
            Fault::InventsField => "RGI-HDR-1",
            Fault::JoinsRequestFields => "RGI-HDR-2",
            Fault::TranscodesFieldValues => "RGI-HDR-3",
            Fault::DropsContentLengthField => "RGI-HDR-4",
            Fault::LenientContentLength => "RGI-HDR-4",
            Fault::UnknownCodingIs400 => "RGI-HDR-4",
            Fault::LengthWinsOverChunked => "RGI-HDR-4",
            Fault::AcceptsMissingHost => "RGI-HDR-5",
            Fault::AcceptsAnyHostPort => "RGI-PROTO-1",
            Fault::IgnoresHostMismatch => "RGI-PROTO-2",
            Fault::ChunkedNotLastIsChunked => "RGI-PROTO-3",
            Fault::PlusSignContentLength => "RGI-PROTO-4",
            Fault::IgnoresUnknownExpect => "RGI-PROTO-5",
            Fault::AcceptsAuthorityForm => "RGI-PROTO-6",
            Fault::AnyVersionIsHttp11 => "RGI-PROTO-7",
            Fault::UnfoldsObsFold => "RGI-PROTO-8",
            Fault::LenientRequestLine => "RGI-PROTO-9",
            Fault::KeepsConnectionAfterRefusal => "RGI-PROTO-10",
            Fault::NoTargetLimit => "RGI-LIMIT-2",
            Fault::NoFieldCountLimit => "RGI-LIMIT-3",
            Fault::ReadsOversizedBody => "RGI-LIMIT-4",
            Fault::StalledHeadClosesSilently => "RGI-LIMIT-5",
            Fault::IdleCloseSends408 => "RGI-LIMIT-6",
            Fault::SinkAddsHintedLength => "RGI-CL-10",
            Fault::UntypedBodyErrors => "RGI-INPUT-17",
            Fault::ClientErrorIs500 => "RGI-FAIL-10",
            Fault::StalledBodyKeepsConnection => "RGI-LIMIT-7",
            Fault::ContinueAfterHead => "RGI-INPUT-13",
            Fault::ContinueOnHttp10 => "RGI-INPUT-23",
            Fault::HintsSkipTheBody => "RGI-HINT-6",
            Fault::OneRequestAtATime => "RGI-HINT-5",
            Fault::SkipsBytesAfterBody => "RGI-INPUT-3",
            Fault::TrailersLeftOnConnection => "RGI-INPUT-2",
            Fault::TruncationLooksLikeEof => "RGI-INPUT-2",
            Fault::PreReadsTruncatedBody => "RGI-INPUT-5",
            Fault::NeverSendsContinue => "RGI-INPUT-12",
            Fault::EagerContinue => "RGI-INPUT-13",
            Fault::InputOutlivesResponse => "RGI-INPUT-15",
            Fault::PanicInCallKillsServer => "RGI-FAIL-2",
            Fault::PanicInBodyKillsServer => "RGI-FAIL-2",
            Fault::PanicInDropKillsServer => "RGI-FAIL-2",
            Fault::FailureIsNot500 => "RGI-FAIL-3",
            Fault::LeaksErrorDetail => "RGI-FAIL-4",
            Fault::CompletesFailedResponse => "RGI-FAIL-5",
            Fault::AppendsErrorText => "RGI-FAIL-6",
            Fault::StartsDefaultHead => "RGI-FAIL-7",
            Fault::KeepsBodyAfterDisconnect => "RGI-FAIL-8",
            Fault::WriteIgnoresDisconnect => "RGI-FAIL-8",
            Fault::LeaksUnreadBody => "RGI-CONN-1",
            Fault::LeaksUnreadChunkedBody => "RGI-CONN-1",
            Fault::ClosesSilently => "RGI-CONN-2",
            Fault::IgnoresConnectionClose => "RGI-CONN-2",
            Fault::DropsPipelinedRequests => "RGI-CONN-3",
            Fault::LeaksFieldsToNextRequest => "RGI-CONN-4",
            Fault::StopLeavesConnectionsOpen => "RGI-CONN-5",
            Fault::NoCapabilities => "RGIA-CAP-1",
            Fault::HollowOffload => "RGIA-CAP-3",
            Fault::CallsTwice => "RGIA-APP-1",
            Fault::RetriesFailedCall => "RGI-APP-5",
            Fault::AsyncCallFailureDropsConnection => "RGIA-APP-4",
            Fault::IgnoresForeignWakeUps => "RGIA-POLL-3",
            Fault::BusyPolling => "RGIA-POLL-4",
            Fault::LateWakePanics => "RGIA-POLL-5",
            Fault::PollsAfterEnd => "RGIA-POLL-6",
            Fault::DropsAsyncBodyLate => "RGIA-POLL-7",
            Fault::KeepsAsyncBodyAfterDisconnect => "RGIA-POLL-7",
            Fault::AsyncFailureIsNot500 => "RGI-FAIL-3",
            Fault::OneAsyncRequestAtATime => "RGIA-TASK-1",
            Fault::StopLeavesParkedBodies => "RGIA-TASK-4",
            Fault::BuffersAsyncResponse => "RGIA-OUT-4",
            Fault::ZeroChunkOnEmptyAsync => "RGIA-OUT-6",
            Fault::UnboundedAsyncOutput => "RGIA-OUT-2",
            Fault::BodyOnHeadAsync => "RGIA-OUT-9",
            Fault::BlockingInputForAsync => "RGIA-INPUT-1",
            Fault::FillsAsyncReads => "RGIA-INPUT-3",
            Fault::SkipsBytesAfterAsyncBody => "RGI-CONN-3",
            Fault::AsyncTruncationLooksLikeEof => "RGI-INPUT-2",
            Fault::PreReadsAsyncBody => "RGIA-INPUT-10",
            Fault::EagerContinueAsync => "RGIA-INPUT-11",
            Fault::AsyncInputOutlivesResponse => "RGIA-INPUT-16",
            Fault::InlineOffload => "RGIA-OFFLOAD-1",
            Fault::BlockingOffload => "RGIA-OFFLOAD-2",
            Fault::OffloadAfterShutdown => "RGIA-OFFLOAD-9",
            Fault::IgnoresSwitch => "RGIA-SWITCH-1",
            Fault::KeepsAsyncBodyDuringSwitch => "RGIA-SWITCH-2",
            Fault::SwitchForgetsStoredHead => "RGIA-SWITCH-4",
            Fault::SwitchRepeatsOutput => "RGIA-SWITCH-4",
            Fault::SwitchFailureIsNot500 => "RGIA-SWITCH-5",
            Fault::SwitchDropsReadAhead => "RGIA-SWITCH-6",
            Fault::AfterTasksBeforeResponse => "RGIA-AFTER-1",
            Fault::AfterTasksDropped => "RGIA-AFTER-1",
            Fault::AfterTaskPanicKillsServer => "RGIA-AFTER-2",
            Fault::AfterShutdownLooksRejected => "RGIA-AFTER-5",
            Fault::UpgradeWithoutConnectionField => "RGIA-UPGRADE-1",
            Fault::UpgradeAfterHead => "RGIA-UPGRADE-2",
            Fault::UpgradePicksFirstOffer => "RGIA-UPGRADE-3",
            Fault::UpgradeDropsBufferedBytes => "RGIA-UPGRADE-4",
            Fault::SendsHttpAfterUpgrade => "RGIA-UPGRADE-6",
            Fault::UpgradeHidesFailedHandOver => "RGIA-UPGRADE-9",
            Fault::ReadinessIgnoresReadiness => "RGIA-READY-1",
            Fault::EdgeTriggeredReadiness => "RGIA-READY-2",
            Fault::HangupIgnored => "RGIA-READY-6",
            Fault::NoReadinessTimeout => "RGIA-READY-7",
            Fault::FilesLookReady => "RGIA-READY-10",
            Fault::DroppedWaitsLinger => "RGIA-READY-12",
            Fault::WaitAnyWrongIndex => "RGIA-READY-16",
            Fault::LeakedWaitsKeepTheirNumber => "RGIA-READY-13",
            Fault::ShutdownDrainsWaitedDescriptors => "RGIA-TASK-5",
            Fault::WaitsHoldDuplicates => "RGIA-READY-19",
            Fault::ForgetsDeclaredFeatures => "RGI-FEAT-1",
            Fault::TrailersFilledAfterTheEnd => "RGI-TRAILER-1",
            Fault::RequestTrailersLeak => "RGI-TRAILER-1",
            Fault::TrailersIntoHeaders => "RGI-TRAILER-1",
            Fault::TrailersWithoutTe => "RGI-TRAILER-7",
            Fault::TrailersOnHttp10 => "RGI-TRAILER-7",
            Fault::DropsResponseTrailers => "RGI-TRAILER-7",
            Fault::LengthOnTrailerHead => "RGI-TRAILER-6",
            Fault::EarlyHintsOnHttp10 => "RGI-EARLY-3",
            Fault::EarlyHintsHeldBack => "RGI-EARLY-3",
            Fault::EarlyHintsAfterHead => "RGI-EARLY-3",
            Fault::HintsPinTheHead => "RGI-EARLY-3",
            Fault::EarlyHintsNeverSent => "RGI-EARLY-4",
            Fault::SkipsStartup => "RGI-LIFE-1",
            Fault::StartupAfterFirstRequest => "RGI-LIFE-1",
            Fault::ServesAfterFailedStartup => "RGI-LIFE-2",
            Fault::NoShutdown => "RGI-LIFE-3",
            Fault::ShutdownTwice => "RGI-LIFE-3",
            Fault::SkipsAsyncStartup => "RGIA-LIFE-1",
            Fault::BuffersEventStreams => "RGI-SSE-3",
        }
    }

    /// The suite case that catches the fault, if one does.
    #[must_use]
    pub const fn case(self) -> Option<&'static str> {
        match self {
            Fault::SendsHeadEarly => Some("rgi_start_6_head_waits_for_first_data"),
            Fault::KeepsFirstHead => Some("rgi_start_6_replaced_head_is_the_one_sent"),
            Fault::MapsUnknownStatus => Some("rgi_start_2_status_sent_as_given"),
            Fault::RequiresStartInCall => Some("rgi_start_5_response_started_in_the_body"),
            Fault::SecondStartWins => Some("rgi_start_8_second_start_is_a_typed_error"),
            Fault::ReplaceAfterHeadSendsHead => {
                Some("rgi_start_11_replace_after_head_sent_returns_the_cause")
            }
            Fault::HoldsWrittenData => {
                Some("rgi_write_2_written_data_reaches_the_client_before_write_returns")
            }
            Fault::ReordersWrittenData => Some("rgi_write_3_written_data_precedes_yielded_data"),
            Fault::MasksHighBytes => Some("rgi_body_3_chunks_are_opaque_bytes"),
            Fault::BuffersWholeResponse => Some("rgi_body_4_each_chunk_sent_before_the_next_pull"),
            Fault::UnboundedOutputQueue => Some("rgi_body_4_slow_reader_bounds_buffered_output"),
            Fault::ZeroChunkOnEmpty => Some("rgi_body_6_empty_chunks_send_nothing"),
            Fault::DropsBodyLate => Some("rgi_body_11_dropped_once_before_the_next_request"),
            Fault::BodyOnHead => Some("rgi_body_15_head_request_sends_no_body"),
            Fault::HeadLosesContentLength => Some("rgi_body_15_head_request_sends_no_body"),
            Fault::BodyOn204 => Some("rgi_body_18_no_content_for_204_and_304"),
            Fault::FileSentTwice => Some("rgi_file_2_file_body_served_exactly"),
            Fault::FileIgnoresRange => Some("rgi_file_5_file_range_and_head"),
            Fault::PadsShortBody => Some("rgi_file_5_short_file_closes_the_connection"),
            Fault::SendsPastContentLength => Some("rgi_cl_1_never_more_than_declared"),
            Fault::KeepsAliveAfterShortBody => Some("rgi_cl_3_fewer_than_declared_closes"),
            Fault::LengthAndChunked => Some("rgi_cl_9_correct_framing"),
            Fault::ChunkedOnHttp10 => Some("rgi_cl_8_close_delimited_on_http10"),
            Fault::NoDate => Some("rgi_head_9_date_added"),
            Fault::JoinsResponseFields => Some("rgi_head_8_fields_sent_as_given"),
            Fault::UppercasesMethod => Some("rgi_env_3_method_and_version_as_received"),
            Fault::DecodesTarget => Some("rgi_env_4_target_and_query_undecoded"),
            Fault::WrongServerPort => Some("rgi_env_5_server_name_and_port"),
            Fault::MissingRemoteAddr => Some("rgi_env_6_remote_address_is_the_peer"),
            Fault::WrongScheme => Some("rgi_env_7_url_scheme_is_http_without_tls"),
            Fault::WrongConcurrency => Some("rgi_env_8_concurrency_facts"),
            Fault::PreReadsChunkedBody => Some("rgi_env_10_content_length_from_framing"),
            Fault::SilentOnMalformed => Some("rgi_env_1_malformed_request_rejected"),
            Fault::MountsAtFirstSegment => Some("rgi_path_1_root_mount_gets_the_whole_path"),
            Fault::NormalisesPath => Some("rgi_path_3_decoded_once_nothing_else"),
            Fault::EnvironErrorIs500 => Some("rgi_path_3_bad_percent_encoding_is_400"),
            Fault::DecodesEncodedSlash => Some("rgi_path_4_encoded_slash_does_not_split"),
            Fault::RejectsNonUtf8Path => Some("rgi_path_5_decoded_paths_are_bytes"),
            Fault::AnswersEveryAsterisk => Some("rgi_path_8_options_asterisk_form"),
            Fault::KeepsHostForAbsoluteForm => Some("rgi_path_9_absolute_form_target"),
            Fault::ConnectGets400 => Some("rgi_path_10_connect_not_passed_on"),
            Fault::InventsField => Some("rgi_hdr_1_every_field_nothing_invented"),
            Fault::JoinsRequestFields => Some("rgi_hdr_2_repeated_fields_stay_separate"),
            Fault::TranscodesFieldValues => Some("rgi_hdr_3_values_byte_exact"),
            Fault::DropsContentLengthField => {
                Some("rgi_hdr_4_framing_fields_kept_transfer_encoding_removed")
            }
            Fault::LenientContentLength => Some("rgi_hdr_4_bad_content_length_is_400"),
            Fault::UnknownCodingIs400 => Some("rgi_hdr_4_unknown_transfer_coding_is_501"),
            Fault::LengthWinsOverChunked => Some("rgi_hdr_4_length_and_chunked_together"),
            Fault::AcceptsMissingHost => Some("rgi_hdr_5_host_checked"),
            Fault::AcceptsAnyHostPort => Some("rgi_proto_1_host_present_single_valid"),
            Fault::IgnoresHostMismatch => Some("rgi_proto_2_absolute_form_and_host"),
            Fault::ChunkedNotLastIsChunked => Some("rgi_proto_3_transfer_codings"),
            Fault::PlusSignContentLength => Some("rgi_proto_4_content_length_strict"),
            Fault::IgnoresUnknownExpect => Some("rgi_proto_5_unknown_expectation_is_417"),
            Fault::AcceptsAuthorityForm => Some("rgi_proto_6_target_forms_match_methods"),
            Fault::AnyVersionIsHttp11 => Some("rgi_proto_7_unsupported_version_is_505"),
            Fault::UnfoldsObsFold => Some("rgi_proto_8_field_syntax"),
            Fault::LenientRequestLine => Some("rgi_proto_9_request_line_syntax"),
            Fault::KeepsConnectionAfterRefusal => Some("rgi_proto_10_refusals_close_no_smuggling"),
            Fault::NoTargetLimit => Some("rgi_limit_2_long_target_is_414"),
            Fault::NoFieldCountLimit => Some("rgi_limit_3_large_header_section_is_431"),
            Fault::ReadsOversizedBody => Some("rgi_limit_4_declared_body_over_limit_is_413"),
            Fault::StalledHeadClosesSilently => Some("rgi_limit_5_stalled_head_is_408"),
            Fault::IdleCloseSends408 => Some("rgi_limit_6_idle_connection_closed_silently"),
            Fault::SinkAddsHintedLength => Some("rgi_cl_10_declared_length_joins_a_lazy_head"),
            Fault::UntypedBodyErrors => {
                Some("rgi_fail_10_client_body_error_answered_with_its_status")
            }
            Fault::ClientErrorIs500 => {
                Some("rgi_fail_10_client_body_error_answered_with_its_status")
            }
            Fault::StalledBodyKeepsConnection => Some("rgi_limit_7_stalled_body_is_408"),
            Fault::ContinueAfterHead => Some("rgi_input_13_no_100_continue_for_unread_body"),
            Fault::ContinueOnHttp10 => Some("rgi_input_23_no_interim_response_on_http10"),
            Fault::HintsSkipTheBody => Some("rgi_hint_6_hints_do_not_change_the_input"),
            Fault::OneRequestAtATime => Some("rgi_hint_5_blocking_app_does_not_stall_others"),
            Fault::SkipsBytesAfterBody => Some("rgi_input_3_content_length_body_read_exactly"),
            Fault::TrailersLeftOnConnection => Some("rgi_input_2_chunked_body_decoded"),
            Fault::TruncationLooksLikeEof => Some("rgi_input_2_truncated_chunked_body_is_an_error"),
            Fault::PreReadsTruncatedBody => Some("rgi_input_5_truncated_body_is_an_error"),
            Fault::NeverSendsContinue => Some("rgi_input_12_expect_100_continue_on_first_read"),
            Fault::EagerContinue => Some("rgi_input_13_no_100_continue_for_unread_body"),
            Fault::InputOutlivesResponse => Some("rgi_input_15_reads_after_the_response_finished"),
            Fault::PanicInCallKillsServer => Some("rgi_fail_2_panic_in_call_is_contained"),
            Fault::PanicInBodyKillsServer => Some("rgi_fail_2_panic_in_body_is_contained"),
            Fault::PanicInDropKillsServer => Some("rgi_fail_2_panic_in_drop_is_contained"),
            Fault::FailureIsNot500 => Some("rgi_fail_3_error_before_head_is_500"),
            Fault::LeaksErrorDetail => Some("rgi_fail_4_no_application_detail_in_error_response"),
            Fault::CompletesFailedResponse => Some("rgi_fail_5_failure_after_head_ends_abnormally"),
            Fault::AppendsErrorText => Some("rgi_fail_6_no_error_text_after_the_head"),
            Fault::StartsDefaultHead => Some("rgi_fail_7_output_without_start_is_500"),
            Fault::KeepsBodyAfterDisconnect => {
                Some("rgi_fail_8_disconnect_drops_the_body_promptly")
            }
            Fault::WriteIgnoresDisconnect => {
                Some("rgi_fail_8_write_after_disconnect_is_a_transport_error")
            }
            Fault::LeaksUnreadBody => Some("rgi_conn_1_unread_body_never_parsed_as_a_request"),
            Fault::LeaksUnreadChunkedBody => {
                Some("rgi_conn_1_unread_chunked_body_never_parsed_as_a_request")
            }
            Fault::ClosesSilently => Some("rgi_conn_2_keep_alive_serves_two_requests"),
            Fault::IgnoresConnectionClose => Some("rgi_conn_2_connection_close_honoured"),
            Fault::DropsPipelinedRequests => {
                Some("rgi_conn_3_pipelined_requests_in_order_one_at_a_time")
            }
            Fault::LeaksFieldsToNextRequest => Some("rgi_conn_4_requests_are_isolated"),
            Fault::StopLeavesConnectionsOpen => {
                Some("rgi_conn_5_shutdown_ends_in_flight_responses")
            }
            Fault::NoCapabilities => Some("rgia_cap_1_one_capability_set_per_request"),
            Fault::HollowOffload => Some("rgia_cap_2_no_capabilities_from_a_synchronous_server"),
            Fault::CallsTwice => Some("rgia_app_1_one_call_per_request"),
            Fault::RetriesFailedCall => Some("rgi_app_5_a_failed_call_is_not_retried"),
            Fault::AsyncCallFailureDropsConnection => Some("rgia_app_4_failures_of_call_get_a_500"),
            Fault::IgnoresForeignWakeUps => Some("rgia_poll_1_a_start_response_on_every_poll"),
            Fault::BusyPolling => Some("rgia_poll_4_no_busy_polling"),
            Fault::LateWakePanics => Some("rgia_poll_5_late_wake_ups_are_harmless"),
            Fault::PollsAfterEnd => Some("rgia_poll_6_no_poll_after_the_end"),
            Fault::DropsAsyncBodyLate => Some("rgia_poll_7_dropped_before_the_next_request"),
            Fault::KeepsAsyncBodyAfterDisconnect => {
                Some("rgia_poll_7_dropped_when_the_client_vanishes")
            }
            Fault::AsyncFailureIsNot500 => {
                Some("rgia_poll_8_poll_failures_follow_the_failure_rules")
            }
            Fault::OneAsyncRequestAtATime => Some("rgia_task_1_a_waiting_request_blocks_no_one"),
            Fault::StopLeavesParkedBodies => Some("rgia_task_4_shutdown_drops_parked_bodies"),
            Fault::BuffersAsyncResponse => Some("rgia_out_4_chunks_are_streamed_as_produced"),
            Fault::ZeroChunkOnEmptyAsync => Some("rgia_out_6_empty_chunks_send_nothing"),
            Fault::UnboundedAsyncOutput => Some("rgia_out_2_unsent_output_is_bounded"),
            Fault::BodyOnHeadAsync => Some("rgia_out_9_head_and_length_rules_apply"),
            Fault::BlockingInputForAsync => Some("rgia_input_1_the_input_has_a_non_blocking_face"),
            Fault::FillsAsyncReads => Some("rgia_input_3_a_slow_upload_arrives_piece_by_piece"),
            Fault::SkipsBytesAfterAsyncBody => Some("rgia_input_4_the_body_ends_at_its_boundary"),
            Fault::AsyncTruncationLooksLikeEof => {
                Some("rgia_input_4_a_truncated_upload_is_an_error")
            }
            Fault::PreReadsAsyncBody => Some("rgia_input_10_the_body_is_read_on_demand"),
            Fault::EagerContinueAsync => Some("rgia_input_11_continue_on_first_demand"),
            Fault::AsyncInputOutlivesResponse => {
                Some("rgia_input_16_nothing_from_the_next_request")
            }
            Fault::InlineOffload => Some("rgia_offload_1_jobs_run_on_worker_threads"),
            Fault::BlockingOffload => Some("rgia_offload_2_execute_never_blocks"),
            Fault::OffloadAfterShutdown => Some("rgia_offload_9_no_jobs_after_shutdown"),
            Fault::IgnoresSwitch => Some("rgia_switch_1_a_switch_before_the_head"),
            Fault::KeepsAsyncBodyDuringSwitch => {
                Some("rgia_switch_2_the_async_body_is_dropped_first")
            }
            Fault::SwitchForgetsStoredHead => Some("rgia_switch_4_a_stored_head_carries_over"),
            Fault::SwitchRepeatsOutput => Some("rgia_switch_4_sent_output_carries_over"),
            Fault::SwitchFailureIsNot500 => Some("rgia_switch_5_continuation_failures"),
            Fault::SwitchDropsReadAhead => Some("rgia_switch_6_blocking_input_over_the_remainder"),
            Fault::AfterTasksBeforeResponse => Some("rgia_after_1_tasks_run_after_the_response"),
            Fault::AfterTasksDropped => Some("rgia_after_1_tasks_run_without_the_client"),
            Fault::AfterTaskPanicKillsServer => Some("rgia_after_2_a_panicking_task_is_contained"),
            Fault::AfterShutdownLooksRejected => Some("rgia_after_5_no_tasks_after_shutdown"),
            Fault::UpgradeWithoutConnectionField => Some("rgia_upgrade_1_offered_only_when_asked"),
            Fault::UpgradeAfterHead => Some("rgia_upgrade_2_no_101_after_the_head"),
            Fault::UpgradePicksFirstOffer => Some("rgia_upgrade_3_several_offers_need_a_choice"),
            Fault::UpgradeDropsBufferedBytes => Some("rgia_upgrade_4_the_101_then_the_stream"),
            Fault::SendsHttpAfterUpgrade => Some("rgia_upgrade_6_http_output_after_accept_closes"),
            Fault::UpgradeHidesFailedHandOver => {
                Some("rgia_upgrade_9_a_failed_hand_over_is_reported")
            }
            Fault::ReadinessIgnoresReadiness => Some("rgia_ready_1_a_pipe_wait_wakes_the_body"),
            Fault::EdgeTriggeredReadiness => Some("rgia_ready_2_waits_are_level_triggered"),
            Fault::HangupIgnored => Some("rgia_ready_6_hangup_is_reported"),
            Fault::NoReadinessTimeout => Some("rgia_ready_7_timeouts_are_kept"),
            Fault::FilesLookReady => Some("rgia_ready_10_files_are_unpollable"),
            Fault::DroppedWaitsLinger => Some("rgia_ready_12_a_dropped_wait_is_deregistered"),
            Fault::WaitAnyWrongIndex => Some("rgia_ready_16_wait_any_reports_which_source"),
            Fault::LeakedWaitsKeepTheirNumber => Some("rgia_ready_13_a_leaked_wait_is_harmless"),
            Fault::ShutdownDrainsWaitedDescriptors => {
                Some("rgia_task_5_shutdown_leaves_descriptors_alone")
            }
            Fault::WaitsHoldDuplicates => Some("rgia_ready_19_a_leaked_wait_holds_nothing_open"),
            Fault::ForgetsDeclaredFeatures => Some("rgi_feat_1_declared_features_match_the_claims"),
            Fault::TrailersFilledAfterTheEnd => {
                Some("rgi_trailer_1_request_trailers_after_the_body")
            }
            Fault::RequestTrailersLeak => Some("rgi_trailer_1_request_trailers_after_the_body"),
            Fault::TrailersIntoHeaders => Some("rgi_trailer_1_request_trailers_after_the_body"),
            Fault::TrailersWithoutTe => {
                Some("rgi_trailer_7_undeliverable_trailers_are_dropped_silently")
            }
            Fault::TrailersOnHttp10 => {
                Some("rgi_trailer_7_undeliverable_trailers_are_dropped_silently")
            }
            Fault::DropsResponseTrailers => {
                Some("rgi_trailer_7_trailers_reach_a_client_that_accepts_them")
            }
            Fault::LengthOnTrailerHead => {
                Some("rgi_trailer_6_announced_trailers_keep_a_length_off_the_head")
            }
            Fault::EarlyHintsOnHttp10 => Some("rgi_early_3_no_hints_to_http10"),
            Fault::EarlyHintsHeldBack => Some("rgi_early_3_hints_go_out_before_the_final_head"),
            Fault::EarlyHintsAfterHead => Some("rgi_early_3_no_hints_after_the_final_head"),
            Fault::HintsPinTheHead => Some("rgi_early_3_hints_go_out_before_the_final_head"),
            Fault::EarlyHintsNeverSent => Some("rgi_early_3_hints_go_out_before_the_final_head"),
            Fault::SkipsStartup => Some("rgi_life_1_startup_before_the_first_request"),
            Fault::StartupAfterFirstRequest => Some("rgi_life_1_startup_before_the_first_request"),
            Fault::ServesAfterFailedStartup => Some("rgi_life_2_failed_startup_stops_the_server"),
            Fault::NoShutdown => Some("rgi_life_3_shutdown_once_after_the_last_response"),
            Fault::ShutdownTwice => Some("rgi_life_3_shutdown_once_after_the_last_response"),
            Fault::SkipsAsyncStartup => Some("rgia_life_1_async_startup_and_shutdown"),
            Fault::BuffersEventStreams => Some("rgi_sse_3_each_event_sent_at_once"),
        }
    }

    /// The suite case that catches the fault and the clause it reports,
    /// for the catalogue's list of cases with a broken example.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi_toy_server::Fault;
    ///
    /// assert_eq!(
    ///     Fault::LeaksUnreadBody.breaks(),
    ///     Some(("rgi_conn_1_unread_body_never_parsed_as_a_request", "RGI-CONN-1")),
    /// );
    /// ```
    #[must_use]
    pub const fn breaks(self) -> Option<(&'static str, &'static str)> {
        match self.case() {
            Some(case) => Some((case, self.clause())),
            None => None,
        }
    }

    /// The fault's name in reports: its variant name.
    #[must_use]
    pub fn name(self) -> String {
        format!("{self:?}")
    }

    /// The synchronous fault whose behaviour this asynchronous twin has.
    const fn mirrors(self) -> Option<Fault> {
        match self {
            Fault::DropsAsyncBodyLate => Some(Fault::DropsBodyLate),
            Fault::KeepsAsyncBodyAfterDisconnect => Some(Fault::KeepsBodyAfterDisconnect),
            Fault::AsyncFailureIsNot500 => Some(Fault::FailureIsNot500),
            Fault::OneAsyncRequestAtATime => Some(Fault::OneRequestAtATime),
            Fault::BuffersAsyncResponse => Some(Fault::BuffersWholeResponse),
            Fault::ZeroChunkOnEmptyAsync => Some(Fault::ZeroChunkOnEmpty),
            Fault::UnboundedAsyncOutput => Some(Fault::UnboundedOutputQueue),
            Fault::BodyOnHeadAsync => Some(Fault::BodyOnHead),
            Fault::SkipsBytesAfterAsyncBody => Some(Fault::SkipsBytesAfterBody),
            Fault::AsyncTruncationLooksLikeEof => Some(Fault::TruncationLooksLikeEof),
            Fault::EagerContinueAsync => Some(Fault::EagerContinue),
            Fault::AsyncInputOutlivesResponse => Some(Fault::InputOutlivesResponse),
            Fault::SkipsAsyncStartup => Some(Fault::SkipsStartup),
            _ => None,
        }
    }

    /// Whether the behaviour has an asynchronous twin, so that this
    /// variant applies to synchronous applications only.
    const fn has_twin(self) -> bool {
        matches!(
            self,
            Fault::DropsBodyLate
                | Fault::KeepsBodyAfterDisconnect
                | Fault::FailureIsNot500
                | Fault::OneRequestAtATime
                | Fault::BuffersWholeResponse
                | Fault::ZeroChunkOnEmpty
                | Fault::UnboundedOutputQueue
                | Fault::BodyOnHead
                | Fault::SkipsBytesAfterBody
                | Fault::TruncationLooksLikeEof
                | Fault::EagerContinue
                | Fault::InputOutlivesResponse
                | Fault::SkipsStartup
        )
    }
}

/// Whether the `behaviour` of a fault is switched on for a request, when
/// `active` is the server's fault: a fault with an asynchronous twin acts
/// on synchronous applications only, and its twin on asynchronous ones.
pub(crate) fn acts(active: Option<Fault>, behaviour: Fault, is_async: bool) -> bool {
    match active {
        Some(fault) if fault == behaviour => !(is_async && behaviour.has_twin()),
        Some(fault) => is_async && fault.mirrors() == Some(behaviour),
        None => false,
    }
}

/// Every fault with the suite case that catches it and the clause that
/// case reports: `tests/toy_faults.rs` runs each row against the faulty
/// and the conforming toy.
pub const FAULTS: &[(Fault, &str, &str)] = &[
    (
        Fault::SendsHeadEarly,
        "rgi_start_6_head_waits_for_first_data",
        "RGI-START-6",
    ),
    (
        Fault::KeepsFirstHead,
        "rgi_start_6_replaced_head_is_the_one_sent",
        "RGI-START-6",
    ),
    (
        Fault::MapsUnknownStatus,
        "rgi_start_2_status_sent_as_given",
        "RGI-START-2",
    ),
    (
        Fault::RequiresStartInCall,
        "rgi_start_5_response_started_in_the_body",
        "RGI-START-5",
    ),
    (
        Fault::SecondStartWins,
        "rgi_start_8_second_start_is_a_typed_error",
        "RGI-START-8",
    ),
    (
        Fault::ReplaceAfterHeadSendsHead,
        "rgi_start_11_replace_after_head_sent_returns_the_cause",
        "RGI-START-11",
    ),
    (
        Fault::HoldsWrittenData,
        "rgi_write_2_written_data_reaches_the_client_before_write_returns",
        "RGI-WRITE-2",
    ),
    (
        Fault::ReordersWrittenData,
        "rgi_write_3_written_data_precedes_yielded_data",
        "RGI-WRITE-3",
    ),
    (
        Fault::MasksHighBytes,
        "rgi_body_3_chunks_are_opaque_bytes",
        "RGI-BODY-3",
    ),
    (
        Fault::BuffersWholeResponse,
        "rgi_body_4_each_chunk_sent_before_the_next_pull",
        "RGI-BODY-4",
    ),
    (
        Fault::UnboundedOutputQueue,
        "rgi_body_4_slow_reader_bounds_buffered_output",
        "RGI-BODY-4",
    ),
    (
        Fault::ZeroChunkOnEmpty,
        "rgi_body_6_empty_chunks_send_nothing",
        "RGI-BODY-6",
    ),
    (
        Fault::DropsBodyLate,
        "rgi_body_11_dropped_once_before_the_next_request",
        "RGI-BODY-12",
    ),
    (
        Fault::BodyOnHead,
        "rgi_body_15_head_request_sends_no_body",
        "RGI-BODY-15",
    ),
    (
        Fault::HeadLosesContentLength,
        "rgi_body_15_head_request_sends_no_body",
        "RGI-BODY-15",
    ),
    (
        Fault::BodyOn204,
        "rgi_body_18_no_content_for_204_and_304",
        "RGI-BODY-18",
    ),
    (
        Fault::FileSentTwice,
        "rgi_file_2_file_body_served_exactly",
        "RGI-FILE-2",
    ),
    (
        Fault::FileIgnoresRange,
        "rgi_file_5_file_range_and_head",
        "RGI-FILE-5",
    ),
    (
        Fault::PadsShortBody,
        "rgi_file_5_short_file_closes_the_connection",
        "RGI-FILE-5",
    ),
    (
        Fault::SendsPastContentLength,
        "rgi_cl_1_never_more_than_declared",
        "RGI-CL-1",
    ),
    (
        Fault::KeepsAliveAfterShortBody,
        "rgi_cl_3_fewer_than_declared_closes",
        "RGI-CL-3",
    ),
    (
        Fault::LengthAndChunked,
        "rgi_cl_9_correct_framing",
        "RGI-CL-9",
    ),
    (
        Fault::ChunkedOnHttp10,
        "rgi_cl_8_close_delimited_on_http10",
        "RGI-CL-8",
    ),
    (Fault::NoDate, "rgi_head_9_date_added", "RGI-HEAD-9"),
    (
        Fault::JoinsResponseFields,
        "rgi_head_8_fields_sent_as_given",
        "RGI-HEAD-8",
    ),
    (
        Fault::UppercasesMethod,
        "rgi_env_3_method_and_version_as_received",
        "RGI-ENV-3",
    ),
    (
        Fault::DecodesTarget,
        "rgi_env_4_target_and_query_undecoded",
        "RGI-ENV-4",
    ),
    (
        Fault::WrongServerPort,
        "rgi_env_5_server_name_and_port",
        "RGI-ENV-5",
    ),
    (
        Fault::MissingRemoteAddr,
        "rgi_env_6_remote_address_is_the_peer",
        "RGI-ENV-6",
    ),
    (
        Fault::WrongScheme,
        "rgi_env_7_url_scheme_is_http_without_tls",
        "RGI-ENV-7",
    ),
    (
        Fault::WrongConcurrency,
        "rgi_env_8_concurrency_facts",
        "RGI-ENV-8",
    ),
    (
        Fault::PreReadsChunkedBody,
        "rgi_env_10_content_length_from_framing",
        "RGI-ENV-10",
    ),
    (
        Fault::SilentOnMalformed,
        "rgi_env_1_malformed_request_rejected",
        "RGI-ENV-1",
    ),
    (
        Fault::MountsAtFirstSegment,
        "rgi_path_1_root_mount_gets_the_whole_path",
        "RGI-PATH-1",
    ),
    (
        Fault::NormalisesPath,
        "rgi_path_3_decoded_once_nothing_else",
        "RGI-PATH-3",
    ),
    (
        Fault::EnvironErrorIs500,
        "rgi_path_3_bad_percent_encoding_is_400",
        "RGI-PATH-3",
    ),
    (
        Fault::DecodesEncodedSlash,
        "rgi_path_4_encoded_slash_does_not_split",
        "RGI-PATH-4",
    ),
    (
        Fault::RejectsNonUtf8Path,
        "rgi_path_5_decoded_paths_are_bytes",
        "RGI-PATH-5",
    ),
    (
        Fault::AnswersEveryAsterisk,
        "rgi_path_8_options_asterisk_form",
        "RGI-PATH-8",
    ),
    (
        Fault::KeepsHostForAbsoluteForm,
        "rgi_path_9_absolute_form_target",
        "RGI-PATH-9",
    ),
    (
        Fault::ConnectGets400,
        "rgi_path_10_connect_not_passed_on",
        "RGI-PATH-10",
    ),
    (
        Fault::InventsField,
        "rgi_hdr_1_every_field_nothing_invented",
        "RGI-HDR-1",
    ),
    (
        Fault::JoinsRequestFields,
        "rgi_hdr_2_repeated_fields_stay_separate",
        "RGI-HDR-2",
    ),
    (
        Fault::TranscodesFieldValues,
        "rgi_hdr_3_values_byte_exact",
        "RGI-HDR-3",
    ),
    (
        Fault::DropsContentLengthField,
        "rgi_hdr_4_framing_fields_kept_transfer_encoding_removed",
        "RGI-HDR-4",
    ),
    (
        Fault::LenientContentLength,
        "rgi_hdr_4_bad_content_length_is_400",
        "RGI-HDR-4",
    ),
    (
        Fault::UnknownCodingIs400,
        "rgi_hdr_4_unknown_transfer_coding_is_501",
        "RGI-HDR-4",
    ),
    (
        Fault::LengthWinsOverChunked,
        "rgi_hdr_4_length_and_chunked_together",
        "RGI-HDR-4",
    ),
    (
        Fault::AcceptsMissingHost,
        "rgi_hdr_5_host_checked",
        "RGI-HDR-5",
    ),
    (
        Fault::AcceptsAnyHostPort,
        "rgi_proto_1_host_present_single_valid",
        "RGI-PROTO-1",
    ),
    (
        Fault::IgnoresHostMismatch,
        "rgi_proto_2_absolute_form_and_host",
        "RGI-PROTO-2",
    ),
    (
        Fault::ChunkedNotLastIsChunked,
        "rgi_proto_3_transfer_codings",
        "RGI-PROTO-3",
    ),
    (
        Fault::PlusSignContentLength,
        "rgi_proto_4_content_length_strict",
        "RGI-PROTO-4",
    ),
    (
        Fault::IgnoresUnknownExpect,
        "rgi_proto_5_unknown_expectation_is_417",
        "RGI-PROTO-5",
    ),
    (
        Fault::AcceptsAuthorityForm,
        "rgi_proto_6_target_forms_match_methods",
        "RGI-PROTO-6",
    ),
    (
        Fault::AnyVersionIsHttp11,
        "rgi_proto_7_unsupported_version_is_505",
        "RGI-PROTO-7",
    ),
    (
        Fault::UnfoldsObsFold,
        "rgi_proto_8_field_syntax",
        "RGI-PROTO-8",
    ),
    (
        Fault::LenientRequestLine,
        "rgi_proto_9_request_line_syntax",
        "RGI-PROTO-9",
    ),
    (
        Fault::KeepsConnectionAfterRefusal,
        "rgi_proto_10_refusals_close_no_smuggling",
        "RGI-PROTO-10",
    ),
    (
        Fault::NoTargetLimit,
        "rgi_limit_2_long_target_is_414",
        "RGI-LIMIT-2",
    ),
    (
        Fault::NoFieldCountLimit,
        "rgi_limit_3_large_header_section_is_431",
        "RGI-LIMIT-3",
    ),
    (
        Fault::ReadsOversizedBody,
        "rgi_limit_4_declared_body_over_limit_is_413",
        "RGI-LIMIT-4",
    ),
    (
        Fault::StalledHeadClosesSilently,
        "rgi_limit_5_stalled_head_is_408",
        "RGI-LIMIT-5",
    ),
    (
        Fault::IdleCloseSends408,
        "rgi_limit_6_idle_connection_closed_silently",
        "RGI-LIMIT-6",
    ),
    (
        Fault::SinkAddsHintedLength,
        "rgi_cl_10_declared_length_joins_a_lazy_head",
        "RGI-CL-10",
    ),
    (
        Fault::UntypedBodyErrors,
        "rgi_fail_10_client_body_error_answered_with_its_status",
        "RGI-INPUT-17",
    ),
    (
        Fault::ClientErrorIs500,
        "rgi_fail_10_client_body_error_answered_with_its_status",
        "RGI-FAIL-10",
    ),
    (
        Fault::StalledBodyKeepsConnection,
        "rgi_limit_7_stalled_body_is_408",
        "RGI-LIMIT-7",
    ),
    (
        Fault::ContinueAfterHead,
        "rgi_input_13_no_100_continue_for_unread_body",
        "RGI-INPUT-13",
    ),
    (
        Fault::ContinueOnHttp10,
        "rgi_input_23_no_interim_response_on_http10",
        "RGI-INPUT-23",
    ),
    (
        Fault::HintsSkipTheBody,
        "rgi_hint_6_hints_do_not_change_the_input",
        "RGI-HINT-6",
    ),
    (
        Fault::OneRequestAtATime,
        "rgi_hint_5_blocking_app_does_not_stall_others",
        "RGI-HINT-5",
    ),
    (
        Fault::SkipsBytesAfterBody,
        "rgi_input_3_content_length_body_read_exactly",
        "RGI-INPUT-3",
    ),
    (
        Fault::TrailersLeftOnConnection,
        "rgi_input_2_chunked_body_decoded",
        "RGI-INPUT-2",
    ),
    (
        Fault::TruncationLooksLikeEof,
        "rgi_input_2_truncated_chunked_body_is_an_error",
        "RGI-INPUT-2",
    ),
    (
        Fault::PreReadsTruncatedBody,
        "rgi_input_5_truncated_body_is_an_error",
        "RGI-INPUT-5",
    ),
    (
        Fault::NeverSendsContinue,
        "rgi_input_12_expect_100_continue_on_first_read",
        "RGI-INPUT-12",
    ),
    (
        Fault::EagerContinue,
        "rgi_input_13_no_100_continue_for_unread_body",
        "RGI-INPUT-13",
    ),
    (
        Fault::InputOutlivesResponse,
        "rgi_input_15_reads_after_the_response_finished",
        "RGI-INPUT-15",
    ),
    (
        Fault::PanicInCallKillsServer,
        "rgi_fail_2_panic_in_call_is_contained",
        "RGI-FAIL-2",
    ),
    (
        Fault::PanicInBodyKillsServer,
        "rgi_fail_2_panic_in_body_is_contained",
        "RGI-FAIL-2",
    ),
    (
        Fault::PanicInDropKillsServer,
        "rgi_fail_2_panic_in_drop_is_contained",
        "RGI-FAIL-2",
    ),
    (
        Fault::FailureIsNot500,
        "rgi_fail_3_error_before_head_is_500",
        "RGI-FAIL-3",
    ),
    (
        Fault::LeaksErrorDetail,
        "rgi_fail_4_no_application_detail_in_error_response",
        "RGI-FAIL-4",
    ),
    (
        Fault::CompletesFailedResponse,
        "rgi_fail_5_failure_after_head_ends_abnormally",
        "RGI-FAIL-5",
    ),
    (
        Fault::AppendsErrorText,
        "rgi_fail_6_no_error_text_after_the_head",
        "RGI-FAIL-6",
    ),
    (
        Fault::StartsDefaultHead,
        "rgi_fail_7_output_without_start_is_500",
        "RGI-FAIL-7",
    ),
    (
        Fault::KeepsBodyAfterDisconnect,
        "rgi_fail_8_disconnect_drops_the_body_promptly",
        "RGI-FAIL-8",
    ),
    (
        Fault::WriteIgnoresDisconnect,
        "rgi_fail_8_write_after_disconnect_is_a_transport_error",
        "RGI-FAIL-8",
    ),
    (
        Fault::LeaksUnreadBody,
        "rgi_conn_1_unread_body_never_parsed_as_a_request",
        "RGI-CONN-1",
    ),
    (
        Fault::LeaksUnreadChunkedBody,
        "rgi_conn_1_unread_chunked_body_never_parsed_as_a_request",
        "RGI-CONN-1",
    ),
    (
        Fault::ClosesSilently,
        "rgi_conn_2_keep_alive_serves_two_requests",
        "RGI-CONN-2",
    ),
    (
        Fault::IgnoresConnectionClose,
        "rgi_conn_2_connection_close_honoured",
        "RGI-CONN-2",
    ),
    (
        Fault::DropsPipelinedRequests,
        "rgi_conn_3_pipelined_requests_in_order_one_at_a_time",
        "RGI-CONN-3",
    ),
    (
        Fault::LeaksFieldsToNextRequest,
        "rgi_conn_4_requests_are_isolated",
        "RGI-CONN-4",
    ),
    (
        Fault::StopLeavesConnectionsOpen,
        "rgi_conn_5_shutdown_ends_in_flight_responses",
        "RGI-CONN-5",
    ),
    (
        Fault::NoCapabilities,
        "rgia_cap_1_one_capability_set_per_request",
        "RGIA-CAP-1",
    ),
    (
        Fault::HollowOffload,
        "rgia_cap_2_no_capabilities_from_a_synchronous_server",
        "RGIA-CAP-3",
    ),
    (
        Fault::CallsTwice,
        "rgia_app_1_one_call_per_request",
        "RGIA-APP-1",
    ),
    (
        Fault::RetriesFailedCall,
        "rgi_app_5_a_failed_call_is_not_retried",
        "RGI-APP-5",
    ),
    (
        Fault::AsyncCallFailureDropsConnection,
        "rgia_app_4_failures_of_call_get_a_500",
        "RGIA-APP-4",
    ),
    (
        Fault::IgnoresForeignWakeUps,
        "rgia_poll_1_a_start_response_on_every_poll",
        "RGIA-POLL-3",
    ),
    (
        Fault::BusyPolling,
        "rgia_poll_4_no_busy_polling",
        "RGIA-POLL-4",
    ),
    (
        Fault::LateWakePanics,
        "rgia_poll_5_late_wake_ups_are_harmless",
        "RGIA-POLL-5",
    ),
    (
        Fault::PollsAfterEnd,
        "rgia_poll_6_no_poll_after_the_end",
        "RGIA-POLL-6",
    ),
    (
        Fault::DropsAsyncBodyLate,
        "rgia_poll_7_dropped_before_the_next_request",
        "RGIA-POLL-7",
    ),
    (
        Fault::KeepsAsyncBodyAfterDisconnect,
        "rgia_poll_7_dropped_when_the_client_vanishes",
        "RGIA-POLL-7",
    ),
    (
        Fault::AsyncFailureIsNot500,
        "rgia_poll_8_poll_failures_follow_the_failure_rules",
        "RGI-FAIL-3",
    ),
    (
        Fault::OneAsyncRequestAtATime,
        "rgia_task_1_a_waiting_request_blocks_no_one",
        "RGIA-TASK-1",
    ),
    (
        Fault::StopLeavesParkedBodies,
        "rgia_task_4_shutdown_drops_parked_bodies",
        "RGIA-TASK-4",
    ),
    (
        Fault::BuffersAsyncResponse,
        "rgia_out_4_chunks_are_streamed_as_produced",
        "RGIA-OUT-4",
    ),
    (
        Fault::ZeroChunkOnEmptyAsync,
        "rgia_out_6_empty_chunks_send_nothing",
        "RGIA-OUT-6",
    ),
    (
        Fault::UnboundedAsyncOutput,
        "rgia_out_2_unsent_output_is_bounded",
        "RGIA-OUT-2",
    ),
    (
        Fault::BodyOnHeadAsync,
        "rgia_out_9_head_and_length_rules_apply",
        "RGIA-OUT-9",
    ),
    (
        Fault::BlockingInputForAsync,
        "rgia_input_1_the_input_has_a_non_blocking_face",
        "RGIA-INPUT-1",
    ),
    (
        Fault::FillsAsyncReads,
        "rgia_input_3_a_slow_upload_arrives_piece_by_piece",
        "RGIA-INPUT-3",
    ),
    (
        Fault::SkipsBytesAfterAsyncBody,
        "rgia_input_4_the_body_ends_at_its_boundary",
        "RGI-CONN-3",
    ),
    (
        Fault::AsyncTruncationLooksLikeEof,
        "rgia_input_4_a_truncated_upload_is_an_error",
        "RGI-INPUT-2",
    ),
    (
        Fault::PreReadsAsyncBody,
        "rgia_input_10_the_body_is_read_on_demand",
        "RGIA-INPUT-10",
    ),
    (
        Fault::EagerContinueAsync,
        "rgia_input_11_continue_on_first_demand",
        "RGIA-INPUT-11",
    ),
    (
        Fault::AsyncInputOutlivesResponse,
        "rgia_input_16_nothing_from_the_next_request",
        "RGIA-INPUT-16",
    ),
    (
        Fault::InlineOffload,
        "rgia_offload_1_jobs_run_on_worker_threads",
        "RGIA-OFFLOAD-1",
    ),
    (
        Fault::BlockingOffload,
        "rgia_offload_2_execute_never_blocks",
        "RGIA-OFFLOAD-2",
    ),
    (
        Fault::OffloadAfterShutdown,
        "rgia_offload_9_no_jobs_after_shutdown",
        "RGIA-OFFLOAD-9",
    ),
    (
        Fault::IgnoresSwitch,
        "rgia_switch_1_a_switch_before_the_head",
        "RGIA-SWITCH-1",
    ),
    (
        Fault::KeepsAsyncBodyDuringSwitch,
        "rgia_switch_2_the_async_body_is_dropped_first",
        "RGIA-SWITCH-2",
    ),
    (
        Fault::SwitchForgetsStoredHead,
        "rgia_switch_4_a_stored_head_carries_over",
        "RGIA-SWITCH-4",
    ),
    (
        Fault::SwitchRepeatsOutput,
        "rgia_switch_4_sent_output_carries_over",
        "RGIA-SWITCH-4",
    ),
    (
        Fault::SwitchFailureIsNot500,
        "rgia_switch_5_continuation_failures",
        "RGIA-SWITCH-5",
    ),
    (
        Fault::SwitchDropsReadAhead,
        "rgia_switch_6_blocking_input_over_the_remainder",
        "RGIA-SWITCH-6",
    ),
    (
        Fault::AfterTasksBeforeResponse,
        "rgia_after_1_tasks_run_after_the_response",
        "RGIA-AFTER-1",
    ),
    (
        Fault::AfterTasksDropped,
        "rgia_after_1_tasks_run_without_the_client",
        "RGIA-AFTER-1",
    ),
    (
        Fault::AfterTaskPanicKillsServer,
        "rgia_after_2_a_panicking_task_is_contained",
        "RGIA-AFTER-2",
    ),
    (
        Fault::AfterShutdownLooksRejected,
        "rgia_after_5_no_tasks_after_shutdown",
        "RGIA-AFTER-5",
    ),
    (
        Fault::UpgradeWithoutConnectionField,
        "rgia_upgrade_1_offered_only_when_asked",
        "RGIA-UPGRADE-1",
    ),
    (
        Fault::UpgradeAfterHead,
        "rgia_upgrade_2_no_101_after_the_head",
        "RGIA-UPGRADE-2",
    ),
    (
        Fault::UpgradePicksFirstOffer,
        "rgia_upgrade_3_several_offers_need_a_choice",
        "RGIA-UPGRADE-3",
    ),
    (
        Fault::UpgradeDropsBufferedBytes,
        "rgia_upgrade_4_the_101_then_the_stream",
        "RGIA-UPGRADE-4",
    ),
    (
        Fault::SendsHttpAfterUpgrade,
        "rgia_upgrade_6_http_output_after_accept_closes",
        "RGIA-UPGRADE-6",
    ),
    (
        Fault::UpgradeHidesFailedHandOver,
        "rgia_upgrade_9_a_failed_hand_over_is_reported",
        "RGIA-UPGRADE-9",
    ),
    (
        Fault::ReadinessIgnoresReadiness,
        "rgia_ready_1_a_pipe_wait_wakes_the_body",
        "RGIA-READY-1",
    ),
    (
        Fault::EdgeTriggeredReadiness,
        "rgia_ready_2_waits_are_level_triggered",
        "RGIA-READY-2",
    ),
    (
        Fault::HangupIgnored,
        "rgia_ready_6_hangup_is_reported",
        "RGIA-READY-6",
    ),
    (
        Fault::NoReadinessTimeout,
        "rgia_ready_7_timeouts_are_kept",
        "RGIA-READY-7",
    ),
    (
        Fault::FilesLookReady,
        "rgia_ready_10_files_are_unpollable",
        "RGIA-READY-10",
    ),
    (
        Fault::DroppedWaitsLinger,
        "rgia_ready_12_a_dropped_wait_is_deregistered",
        "RGIA-READY-12",
    ),
    (
        Fault::WaitAnyWrongIndex,
        "rgia_ready_16_wait_any_reports_which_source",
        "RGIA-READY-16",
    ),
    (
        Fault::LeakedWaitsKeepTheirNumber,
        "rgia_ready_13_a_leaked_wait_is_harmless",
        "RGIA-READY-13",
    ),
    (
        Fault::ShutdownDrainsWaitedDescriptors,
        "rgia_task_5_shutdown_leaves_descriptors_alone",
        "RGIA-TASK-5",
    ),
    (
        Fault::WaitsHoldDuplicates,
        "rgia_ready_19_a_leaked_wait_holds_nothing_open",
        "RGIA-READY-19",
    ),
    (
        Fault::ForgetsDeclaredFeatures,
        "rgi_feat_1_declared_features_match_the_claims",
        "RGI-FEAT-1",
    ),
    (
        Fault::TrailersFilledAfterTheEnd,
        "rgi_trailer_1_request_trailers_after_the_body",
        "RGI-TRAILER-1",
    ),
    (
        Fault::RequestTrailersLeak,
        "rgi_trailer_1_request_trailers_after_the_body",
        "RGI-TRAILER-1",
    ),
    (
        Fault::TrailersIntoHeaders,
        "rgi_trailer_1_request_trailers_after_the_body",
        "RGI-TRAILER-1",
    ),
    (
        Fault::TrailersWithoutTe,
        "rgi_trailer_7_undeliverable_trailers_are_dropped_silently",
        "RGI-TRAILER-7",
    ),
    (
        Fault::TrailersOnHttp10,
        "rgi_trailer_7_undeliverable_trailers_are_dropped_silently",
        "RGI-TRAILER-7",
    ),
    (
        Fault::DropsResponseTrailers,
        "rgi_trailer_7_trailers_reach_a_client_that_accepts_them",
        "RGI-TRAILER-7",
    ),
    (
        Fault::LengthOnTrailerHead,
        "rgi_trailer_6_announced_trailers_keep_a_length_off_the_head",
        "RGI-TRAILER-6",
    ),
    (
        Fault::EarlyHintsOnHttp10,
        "rgi_early_3_no_hints_to_http10",
        "RGI-EARLY-3",
    ),
    (
        Fault::EarlyHintsHeldBack,
        "rgi_early_3_hints_go_out_before_the_final_head",
        "RGI-EARLY-3",
    ),
    (
        Fault::EarlyHintsAfterHead,
        "rgi_early_3_no_hints_after_the_final_head",
        "RGI-EARLY-3",
    ),
    (
        Fault::HintsPinTheHead,
        "rgi_early_3_hints_go_out_before_the_final_head",
        "RGI-EARLY-3",
    ),
    (
        Fault::EarlyHintsNeverSent,
        "rgi_early_3_hints_go_out_before_the_final_head",
        "RGI-EARLY-4",
    ),
    (
        Fault::SkipsStartup,
        "rgi_life_1_startup_before_the_first_request",
        "RGI-LIFE-1",
    ),
    (
        Fault::StartupAfterFirstRequest,
        "rgi_life_1_startup_before_the_first_request",
        "RGI-LIFE-1",
    ),
    (
        Fault::ServesAfterFailedStartup,
        "rgi_life_2_failed_startup_stops_the_server",
        "RGI-LIFE-2",
    ),
    (
        Fault::NoShutdown,
        "rgi_life_3_shutdown_once_after_the_last_response",
        "RGI-LIFE-3",
    ),
    (
        Fault::ShutdownTwice,
        "rgi_life_3_shutdown_once_after_the_last_response",
        "RGI-LIFE-3",
    ),
    (
        Fault::SkipsAsyncStartup,
        "rgia_life_1_async_startup_and_shutdown",
        "RGIA-LIFE-1",
    ),
    (
        Fault::BuffersEventStreams,
        "rgi_sse_3_each_event_sent_at_once",
        "RGI-SSE-3",
    ),
];
