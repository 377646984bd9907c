//! Deliberate faults: each switches on one way of breaking one clause, so
//! that the suite can be shown to catch a broken server with the expected
//! clause ID.

use serde::Serialize;

/// One deliberate fault of the toy server ([`ToyServer::with_fault`]).
///
/// Each variant breaks exactly the clause its documentation names and
/// behaves correctly otherwise, as far as one rule can be broken alone.
/// [`Fault::clause`] gives the clause, [`Fault::case`] the suite case that
/// catches it, and [`FAULTS`] the whole table.
///
/// [`ToyServer::with_fault`]: super::ToyServer::with_fault
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum Fault {
    /// Writes the head as soon as the application stores it, before any
    /// body data (`RGI-START-6`).
    SendsHeadEarly,
    /// After the response, leaves an unread request body on the connection,
    /// so its bytes are parsed as the next request (`RGI-CONN-1`).
    LeaksUnreadBody,
    /// Collects the whole response and writes it when the body ends: no
    /// chunk reaches the client while the application works (`RGI-BODY-4`).
    BuffersWholeResponse,
    /// Sends `100 Continue` as soon as the head arrives, even if nobody
    /// ever reads the body (`RGI-INPUT-13`).
    EagerContinue,
    /// Never sends `100 Continue`; the client must give up waiting first
    /// (`RGI-INPUT-12`).
    NeverSendsContinue,
    /// Sends `100 Continue` on the first read even after the final head
    /// went out (`RGI-INPUT-13`).
    ContinueAfterHead,
    /// When a send fails because the client went away, pretends it worked
    /// and keeps pulling the body (`RGI-FAIL-8`).
    KeepsBodyAfterDisconnect,
    /// After a failure once the head was sent, writes an error message
    /// into the body before closing (`RGI-FAIL-6`).
    AppendsErrorText,
    /// After a failure once the head was sent, ends the response normally
    /// (the last-chunk), so the client cannot tell it is incomplete
    /// (`RGI-FAIL-5`).
    CompletesFailedResponse,
    /// Puts the application's error message in the body of its 500
    /// (`RGI-FAIL-4`).
    LeaksErrorDetail,
    /// Answers an application failure before the head with `200 OK` and an
    /// empty body instead of 500 (`RGI-FAIL-3`).
    FailureIsNot500,
    /// A panicking application takes the whole server down: it answers the
    /// request with 500 and then stops accepting connections (`RGI-FAIL-2`).
    PanicKillsServer,
    /// Sends the body of a response to a HEAD request (`RGI-BODY-15`).
    BodyOnHead,
    /// Drops the application's `content-length` from the head of a response
    /// to HEAD (`RGI-BODY-15`).
    HeadLosesContentLength,
    /// Merges repeated slashes in the request path before building the
    /// environ (`RGI-PATH-3`).
    NormalisesPath,
    /// Joins repeated request fields into one comma-separated entry
    /// (`RGI-HDR-2`).
    JoinsRequestFields,
    /// Transcodes obs-text in request field values from Latin-1 to UTF-8
    /// (`RGI-HDR-3`).
    TranscodesFieldValues,
    /// Passes an HTTP/1.1 request without a Host field to the application
    /// (`RGI-HDR-5`).
    AcceptsMissingHost,
    /// A chunked upload that ends early reads as a normal end of body
    /// (`RGI-INPUT-2`).
    TruncationLooksLikeEof,
    /// Sends what the body yields beyond the declared Content-Length
    /// (`RGI-CL-1`).
    SendsPastContentLength,
    /// Keeps the connection after a body shorter than its Content-Length
    /// (`RGI-CL-3`).
    KeepsAliveAfterShortBody,
    /// Sends `transfer-encoding: chunked` alongside a Content-Length
    /// (`RGI-CL-9`).
    LengthAndChunked,
    /// Uses the chunked coding in responses to HTTP/1.0 requests
    /// (`RGI-CL-8`).
    ChunkedOnHttp10,
    /// Sends a zero-size chunk for an empty chunk, ending the body early
    /// (`RGI-BODY-6`).
    ZeroChunkOnEmpty,
    /// Keeps every body until its connection closes instead of dropping it
    /// when the response is complete (`RGI-BODY-12`).
    DropsBodyLate,
    /// Keeps the connection although the client sent `Connection: close`
    /// (`RGI-CONN-2`).
    IgnoresConnectionClose,
    /// Sends no `Date` field (`RGI-HEAD-9`).
    NoDate,
    /// Joins response fields of the same name into one line (`RGI-HEAD-8`).
    JoinsResponseFields,
    /// Lets an input outlive its response: a read after the response reads
    /// on from the connection (`RGI-INPUT-15`).
    InputOutlivesResponse,
    /// Reports port 80 as the server port (`RGI-ENV-5`).
    WrongServerPort,
    /// Reports `https` for plain connections (`RGI-ENV-7`).
    WrongScheme,
    /// Reports a single-threaded server although it runs requests on
    /// several threads (`RGI-ENV-8`).
    WrongConcurrency,
    /// Upper-cases the request method (`RGI-ENV-3`).
    UppercasesMethod,
    /// Leaves out the peer's address (`RGI-ENV-6`).
    MissingRemoteAddr,
    /// Puts no capabilities into the environ of asynchronous applications
    /// (`RGIA-CAP-1`).
    NoCapabilities,
    /// Gives asynchronous applications a blocking-only input
    /// (`RGIA-INPUT-1`).
    BlockingInputForAsync,
    /// Runs offload jobs on the calling thread (`RGIA-OFFLOAD-1`).
    InlineOffload,
    /// Polls a pending body again at once, in a loop (`RGIA-POLL-4`).
    BusyPolling,
    /// Readiness waits never time out (`RGIA-READY-7`).
    NoReadinessTimeout,
    /// Runs after-response tasks as soon as they are spawned
    /// (`RGIA-AFTER-1`).
    AfterTasksBeforeResponse,
    /// Finishes the response only after the after-response tasks have run
    /// (`RGIA-AFTER-3`).
    AfterTasksDelayResponse,
    /// Drops after-response tasks unrun (`RGIA-AFTER-1`).
    AfterTasksDropped,
    /// Offers the upgrade on requests whose `Connection` field does not
    /// list `upgrade` (`RGIA-UPGRADE-1`).
    UpgradeWithoutConnectionField,
    /// Loses the bytes the client sent right after its upgrade request
    /// (`RGIA-UPGRADE-4`).
    UpgradeDropsBufferedBytes,
}

impl Fault {
    /// Every fault.
    pub const ALL: &'static [Fault] = &[
        Fault::SendsHeadEarly,
        Fault::LeaksUnreadBody,
        Fault::BuffersWholeResponse,
        Fault::EagerContinue,
        Fault::NeverSendsContinue,
        Fault::ContinueAfterHead,
        Fault::KeepsBodyAfterDisconnect,
        Fault::AppendsErrorText,
        Fault::CompletesFailedResponse,
        Fault::LeaksErrorDetail,
        Fault::FailureIsNot500,
        Fault::PanicKillsServer,
        Fault::BodyOnHead,
        Fault::HeadLosesContentLength,
        Fault::NormalisesPath,
        Fault::JoinsRequestFields,
        Fault::TranscodesFieldValues,
        Fault::AcceptsMissingHost,
        Fault::TruncationLooksLikeEof,
        Fault::SendsPastContentLength,
        Fault::KeepsAliveAfterShortBody,
        Fault::LengthAndChunked,
        Fault::ChunkedOnHttp10,
        Fault::ZeroChunkOnEmpty,
        Fault::DropsBodyLate,
        Fault::IgnoresConnectionClose,
        Fault::NoDate,
        Fault::JoinsResponseFields,
        Fault::InputOutlivesResponse,
        Fault::WrongServerPort,
        Fault::WrongScheme,
        Fault::WrongConcurrency,
        Fault::UppercasesMethod,
        Fault::MissingRemoteAddr,
        Fault::NoCapabilities,
        Fault::BlockingInputForAsync,
        Fault::InlineOffload,
        Fault::BusyPolling,
        Fault::NoReadinessTimeout,
        Fault::AfterTasksBeforeResponse,
        Fault::AfterTasksDelayResponse,
        Fault::AfterTasksDropped,
        Fault::UpgradeWithoutConnectionField,
        Fault::UpgradeDropsBufferedBytes,
    ];

    /// The clause the fault breaks.
    #[must_use]
    pub const fn clause(self) -> &'static str {
        match self {
            Fault::SendsHeadEarly => "RGI-START-6",
            Fault::LeaksUnreadBody => "RGI-CONN-1",
            Fault::BuffersWholeResponse => "RGI-BODY-4",
            Fault::EagerContinue | Fault::ContinueAfterHead => "RGI-INPUT-13",
            Fault::NeverSendsContinue => "RGI-INPUT-12",
            Fault::KeepsBodyAfterDisconnect => "RGI-FAIL-8",
            Fault::AppendsErrorText => "RGI-FAIL-6",
            Fault::CompletesFailedResponse => "RGI-FAIL-5",
            Fault::LeaksErrorDetail => "RGI-FAIL-4",
            Fault::FailureIsNot500 => "RGI-FAIL-3",
            Fault::PanicKillsServer => "RGI-FAIL-2",
            Fault::BodyOnHead | Fault::HeadLosesContentLength => "RGI-BODY-15",
            Fault::NormalisesPath => "RGI-PATH-3",
            Fault::JoinsRequestFields => "RGI-HDR-2",
            Fault::TranscodesFieldValues => "RGI-HDR-3",
            Fault::AcceptsMissingHost => "RGI-HDR-5",
            Fault::TruncationLooksLikeEof => "RGI-INPUT-2",
            Fault::SendsPastContentLength => "RGI-CL-1",
            Fault::KeepsAliveAfterShortBody => "RGI-CL-3",
            Fault::LengthAndChunked => "RGI-CL-9",
            Fault::ChunkedOnHttp10 => "RGI-CL-8",
            Fault::ZeroChunkOnEmpty => "RGI-BODY-6",
            Fault::DropsBodyLate => "RGI-BODY-12",
            Fault::IgnoresConnectionClose => "RGI-CONN-2",
            Fault::NoDate => "RGI-HEAD-9",
            Fault::JoinsResponseFields => "RGI-HEAD-8",
            Fault::InputOutlivesResponse => "RGI-INPUT-15",
            Fault::WrongServerPort => "RGI-ENV-5",
            Fault::WrongScheme => "RGI-ENV-7",
            Fault::WrongConcurrency => "RGI-ENV-8",
            Fault::UppercasesMethod => "RGI-ENV-3",
            Fault::MissingRemoteAddr => "RGI-ENV-6",
            Fault::NoCapabilities => "RGIA-CAP-1",
            Fault::BlockingInputForAsync => "RGIA-INPUT-1",
            Fault::InlineOffload => "RGIA-OFFLOAD-1",
            Fault::BusyPolling => "RGIA-POLL-4",
            Fault::NoReadinessTimeout => "RGIA-READY-7",
            Fault::AfterTasksBeforeResponse | Fault::AfterTasksDropped => "RGIA-AFTER-1",
            Fault::AfterTasksDelayResponse => "RGIA-AFTER-3",
            Fault::UpgradeWithoutConnectionField => "RGIA-UPGRADE-1",
            Fault::UpgradeDropsBufferedBytes => "RGIA-UPGRADE-4",
        }
    }

    /// The fault's name in reports: its variant name.
    #[must_use]
    pub fn name(self) -> String {
        format!("{self:?}")
    }
}
