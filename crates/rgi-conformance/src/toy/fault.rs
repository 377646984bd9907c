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
        Fault::UppercasesMethod,
        Fault::MissingRemoteAddr,
        Fault::NoCapabilities,
        Fault::BlockingInputForAsync,
        Fault::InlineOffload,
        Fault::BusyPolling,
        Fault::NoReadinessTimeout,
        Fault::AfterTasksBeforeResponse,
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
            Fault::EagerContinue => "RGI-INPUT-13",
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
            Fault::UppercasesMethod => "RGI-ENV-3",
            Fault::MissingRemoteAddr => "RGI-ENV-6",
            Fault::NoCapabilities => "RGIA-CAP-1",
            Fault::BlockingInputForAsync => "RGIA-INPUT-1",
            Fault::InlineOffload => "RGIA-OFFLOAD-1",
            Fault::BusyPolling => "RGIA-POLL-4",
            Fault::NoReadinessTimeout => "RGIA-READY-7",
            Fault::AfterTasksBeforeResponse | Fault::AfterTasksDropped => "RGIA-AFTER-1",
            Fault::UpgradeWithoutConnectionField => "RGIA-UPGRADE-1",
            Fault::UpgradeDropsBufferedBytes => "RGIA-UPGRADE-4",
        }
    }

    /// The suite case that catches the fault, if one does.
    #[must_use]
    pub const fn case(self) -> Option<&'static str> {
        match self {
            Fault::SendsHeadEarly => Some("rgi_start_6_head_waits_for_first_data"),
            Fault::LeaksUnreadBody => Some("rgi_conn_1_unread_body_never_parsed_as_a_request"),
            Fault::BuffersWholeResponse => Some("rgi_body_4_each_chunk_sent_before_the_next_pull"),
            Fault::EagerContinue => Some("rgi_input_13_no_100_continue_for_unread_body"),
            Fault::NeverSendsContinue => Some("rgi_input_12_expect_100_continue_on_first_read"),
            Fault::KeepsBodyAfterDisconnect => {
                Some("rgi_fail_8_disconnect_drops_the_body_promptly")
            }
            Fault::AppendsErrorText => Some("rgi_fail_6_no_error_text_after_the_head"),
            Fault::CompletesFailedResponse => Some("rgi_fail_5_failure_after_head_ends_abnormally"),
            Fault::LeaksErrorDetail => Some("rgi_fail_4_no_application_detail_in_error_response"),
            Fault::FailureIsNot500 => Some("rgi_fail_3_error_before_head_is_500"),
            Fault::PanicKillsServer => Some("rgi_fail_2_panic_in_call_is_contained"),
            Fault::BodyOnHead => Some("rgi_body_15_head_request_sends_no_body"),
            Fault::HeadLosesContentLength => Some("rgi_body_15_head_request_sends_no_body"),
            Fault::NormalisesPath => Some("rgi_path_3_decoded_once_nothing_else"),
            Fault::JoinsRequestFields => Some("rgi_hdr_2_repeated_fields_stay_separate"),
            Fault::TranscodesFieldValues => Some("rgi_hdr_3_values_byte_exact"),
            Fault::AcceptsMissingHost => Some("rgi_hdr_5_host_checked"),
            Fault::TruncationLooksLikeEof => Some("rgi_input_2_truncated_chunked_body_is_an_error"),
            Fault::SendsPastContentLength => Some("rgi_cl_1_never_more_than_declared"),
            Fault::KeepsAliveAfterShortBody => Some("rgi_cl_3_fewer_than_declared_closes"),
            Fault::LengthAndChunked => Some("rgi_cl_9_correct_framing"),
            Fault::ChunkedOnHttp10 => Some("rgi_cl_8_close_delimited_on_http10"),
            Fault::ZeroChunkOnEmpty => Some("rgi_body_6_empty_chunks_send_nothing"),
            Fault::DropsBodyLate => Some("rgi_body_11_dropped_once_before_the_next_request"),
            Fault::IgnoresConnectionClose => Some("rgi_conn_2_connection_close_honoured"),
            Fault::NoDate => Some("rgi_head_9_date_added"),
            Fault::JoinsResponseFields => Some("rgi_head_8_fields_sent_as_given"),
            Fault::InputOutlivesResponse => Some("rgi_input_15_reads_after_the_response_finished"),
            Fault::WrongServerPort => Some("rgi_env_5_server_name_and_port"),
            Fault::WrongScheme => Some("rgi_env_7_url_scheme_is_http_without_tls"),
            Fault::UppercasesMethod => Some("rgi_env_3_method_and_version_as_received"),
            Fault::MissingRemoteAddr => Some("rgi_env_6_remote_address_is_the_peer"),
            Fault::NoCapabilities => Some("rgia_cap_1_one_capability_set_per_request"),
            Fault::BlockingInputForAsync => Some("rgia_input_1_the_input_has_a_non_blocking_face"),
            Fault::InlineOffload => Some("rgia_offload_1_jobs_run_on_worker_threads"),
            Fault::BusyPolling => Some("rgia_poll_4_no_busy_polling"),
            Fault::NoReadinessTimeout => Some("rgia_ready_7_timeouts_are_kept"),
            Fault::AfterTasksBeforeResponse => Some("rgia_after_1_tasks_run_after_the_response"),
            Fault::AfterTasksDropped => Some("rgia_after_1_tasks_run_without_the_client"),
            Fault::UpgradeWithoutConnectionField => Some("rgia_upgrade_1_offered_only_when_asked"),
            Fault::UpgradeDropsBufferedBytes => Some("rgia_upgrade_4_the_101_then_the_stream"),
        }
    }

    /// The suite case that catches the fault and the clause it reports,
    /// for the catalogue's list of cases with a broken example.
    ///
    /// # Examples
    ///
    /// ```
    /// use rgi_conformance::toy::Fault;
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
}

/// Every fault with the suite case that catches it and the clause that
/// case reports: `tests/toy_faults.rs` runs each row against the faulty
/// and the conforming toy.
pub const FAULTS: &[(Fault, &str, &str)] = &[
    (
        Fault::SendsHeadEarly,
        "rgi_start_6_head_waits_for_first_data",
        Fault::SendsHeadEarly.clause(),
    ),
    (
        Fault::LeaksUnreadBody,
        "rgi_conn_1_unread_body_never_parsed_as_a_request",
        Fault::LeaksUnreadBody.clause(),
    ),
    (
        Fault::BuffersWholeResponse,
        "rgi_body_4_each_chunk_sent_before_the_next_pull",
        Fault::BuffersWholeResponse.clause(),
    ),
    (
        Fault::EagerContinue,
        "rgi_input_13_no_100_continue_for_unread_body",
        Fault::EagerContinue.clause(),
    ),
    (
        Fault::NeverSendsContinue,
        "rgi_input_12_expect_100_continue_on_first_read",
        Fault::NeverSendsContinue.clause(),
    ),
    (
        Fault::KeepsBodyAfterDisconnect,
        "rgi_fail_8_disconnect_drops_the_body_promptly",
        Fault::KeepsBodyAfterDisconnect.clause(),
    ),
    (
        Fault::AppendsErrorText,
        "rgi_fail_6_no_error_text_after_the_head",
        Fault::AppendsErrorText.clause(),
    ),
    (
        Fault::CompletesFailedResponse,
        "rgi_fail_5_failure_after_head_ends_abnormally",
        Fault::CompletesFailedResponse.clause(),
    ),
    (
        Fault::LeaksErrorDetail,
        "rgi_fail_4_no_application_detail_in_error_response",
        Fault::LeaksErrorDetail.clause(),
    ),
    (
        Fault::FailureIsNot500,
        "rgi_fail_3_error_before_head_is_500",
        Fault::FailureIsNot500.clause(),
    ),
    (
        Fault::PanicKillsServer,
        "rgi_fail_2_panic_in_call_is_contained",
        Fault::PanicKillsServer.clause(),
    ),
    (
        Fault::BodyOnHead,
        "rgi_body_15_head_request_sends_no_body",
        Fault::BodyOnHead.clause(),
    ),
    (
        Fault::HeadLosesContentLength,
        "rgi_body_15_head_request_sends_no_body",
        Fault::HeadLosesContentLength.clause(),
    ),
    (
        Fault::NormalisesPath,
        "rgi_path_3_decoded_once_nothing_else",
        Fault::NormalisesPath.clause(),
    ),
    (
        Fault::JoinsRequestFields,
        "rgi_hdr_2_repeated_fields_stay_separate",
        Fault::JoinsRequestFields.clause(),
    ),
    (
        Fault::TranscodesFieldValues,
        "rgi_hdr_3_values_byte_exact",
        Fault::TranscodesFieldValues.clause(),
    ),
    (
        Fault::AcceptsMissingHost,
        "rgi_hdr_5_host_checked",
        Fault::AcceptsMissingHost.clause(),
    ),
    (
        Fault::TruncationLooksLikeEof,
        "rgi_input_2_truncated_chunked_body_is_an_error",
        Fault::TruncationLooksLikeEof.clause(),
    ),
    (
        Fault::SendsPastContentLength,
        "rgi_cl_1_never_more_than_declared",
        Fault::SendsPastContentLength.clause(),
    ),
    (
        Fault::KeepsAliveAfterShortBody,
        "rgi_cl_3_fewer_than_declared_closes",
        Fault::KeepsAliveAfterShortBody.clause(),
    ),
    (
        Fault::LengthAndChunked,
        "rgi_cl_9_correct_framing",
        Fault::LengthAndChunked.clause(),
    ),
    (
        Fault::ChunkedOnHttp10,
        "rgi_cl_8_close_delimited_on_http10",
        Fault::ChunkedOnHttp10.clause(),
    ),
    (
        Fault::ZeroChunkOnEmpty,
        "rgi_body_6_empty_chunks_send_nothing",
        Fault::ZeroChunkOnEmpty.clause(),
    ),
    (
        Fault::DropsBodyLate,
        "rgi_body_11_dropped_once_before_the_next_request",
        Fault::DropsBodyLate.clause(),
    ),
    (
        Fault::IgnoresConnectionClose,
        "rgi_conn_2_connection_close_honoured",
        Fault::IgnoresConnectionClose.clause(),
    ),
    (
        Fault::NoDate,
        "rgi_head_9_date_added",
        Fault::NoDate.clause(),
    ),
    (
        Fault::JoinsResponseFields,
        "rgi_head_8_fields_sent_as_given",
        Fault::JoinsResponseFields.clause(),
    ),
    (
        Fault::InputOutlivesResponse,
        "rgi_input_15_reads_after_the_response_finished",
        Fault::InputOutlivesResponse.clause(),
    ),
    (
        Fault::WrongServerPort,
        "rgi_env_5_server_name_and_port",
        Fault::WrongServerPort.clause(),
    ),
    (
        Fault::WrongScheme,
        "rgi_env_7_url_scheme_is_http_without_tls",
        Fault::WrongScheme.clause(),
    ),
    (
        Fault::UppercasesMethod,
        "rgi_env_3_method_and_version_as_received",
        Fault::UppercasesMethod.clause(),
    ),
    (
        Fault::MissingRemoteAddr,
        "rgi_env_6_remote_address_is_the_peer",
        Fault::MissingRemoteAddr.clause(),
    ),
    (
        Fault::NoCapabilities,
        "rgia_cap_1_one_capability_set_per_request",
        Fault::NoCapabilities.clause(),
    ),
    (
        Fault::BlockingInputForAsync,
        "rgia_input_1_the_input_has_a_non_blocking_face",
        Fault::BlockingInputForAsync.clause(),
    ),
    (
        Fault::InlineOffload,
        "rgia_offload_1_jobs_run_on_worker_threads",
        Fault::InlineOffload.clause(),
    ),
    (
        Fault::BusyPolling,
        "rgia_poll_4_no_busy_polling",
        Fault::BusyPolling.clause(),
    ),
    (
        Fault::NoReadinessTimeout,
        "rgia_ready_7_timeouts_are_kept",
        Fault::NoReadinessTimeout.clause(),
    ),
    (
        Fault::AfterTasksBeforeResponse,
        "rgia_after_1_tasks_run_after_the_response",
        Fault::AfterTasksBeforeResponse.clause(),
    ),
    (
        Fault::AfterTasksDropped,
        "rgia_after_1_tasks_run_without_the_client",
        Fault::AfterTasksDropped.clause(),
    ),
    (
        Fault::UpgradeWithoutConnectionField,
        "rgia_upgrade_1_offered_only_when_asked",
        Fault::UpgradeWithoutConnectionField.clause(),
    ),
    (
        Fault::UpgradeDropsBufferedBytes,
        "rgia_upgrade_4_the_101_then_the_stream",
        Fault::UpgradeDropsBufferedBytes.clause(),
    ),
];
