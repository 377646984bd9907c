//! Every rule the validator enforces: the public [`Check`] descriptor plus
//! the side a violation of it blames.

use crate::{Check, Side};

/// One check and the side that breaks it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub(crate) check: Check,
    pub(crate) side: Side,
}

impl Rule {
    const fn server(
        name: &'static str,
        clauses: &'static [&'static str],
        title: &'static str,
    ) -> Rule {
        Rule {
            check: Check::new(name, clauses, title),
            side: Side::Server,
        }
    }

    const fn app(
        name: &'static str,
        clauses: &'static [&'static str],
        title: &'static str,
    ) -> Rule {
        Rule {
            check: Check::new(name, clauses, title),
            side: Side::Application,
        }
    }

    /// The clause a violation names: the check's main one.
    pub(crate) fn clause(&self) -> &'static str {
        self.check.clauses().first().copied().unwrap_or("RGI-MW-1")
    }

    /// The check's name.
    pub(crate) fn name(&self) -> &'static str {
        self.check.name()
    }
}

// ---- The request the server hands in (RGI-ENV, RGI-PATH, RGI-HDR) ----

pub(crate) const HOST_MISSING: Rule = Rule::server(
    "host_missing",
    &["RGI-HDR-5"],
    "an HTTP/1.1 request reaches the application with a host field",
);
pub(crate) const HOST_REPEATED: Rule = Rule::server(
    "host_repeated",
    &["RGI-HDR-5"],
    "a request reaches the application with at most one host field",
);
pub(crate) const HOST_INVALID: Rule = Rule::server(
    "host_invalid",
    &["RGI-HDR-5"],
    "the host field the application sees is a valid authority without userinfo",
);
pub(crate) const ABSOLUTE_FORM_HOST: Rule = Rule::server(
    "absolute_form_host",
    &["RGI-PATH-9", "RGI-HDR-5"],
    "for an absolute-form target the host field is the target's authority",
);
pub(crate) const TRANSFER_ENCODING_LEFT: Rule = Rule::server(
    "transfer_encoding_left",
    &["RGI-HDR-4", "RGI-ENV-1"],
    "the server removes transfer-encoding after decoding the body itself",
);
pub(crate) const CONTENT_LENGTH_FIELD_INVALID: Rule = Rule::server(
    "content_length_field_invalid",
    &["RGI-HDR-4"],
    "a content-length request field is one decimal number (or a list of equal ones)",
);
pub(crate) const CONTENT_LENGTH_DISAGREES: Rule = Rule::server(
    "content_length_disagrees",
    &["RGI-ENV-10", "RGI-HDR-4", "RGI-INPUT-16"],
    "the content-length field agrees with the input's declared length",
);
pub(crate) const SERVER_NAME_INVALID: Rule = Rule::server(
    "server_name_invalid",
    &["RGI-ENV-5"],
    "server_name is a host name or address literal, without a port",
);
pub(crate) const SERVER_PORT_ZERO: Rule = Rule::server(
    "server_port_zero",
    &["RGI-ENV-5"],
    "server_port is a real port, not 0",
);
pub(crate) const HTTP_SCHEME_ON_TLS_PORT: Rule = Rule::server(
    "http_scheme_on_tls_port",
    &["RGI-ENV-7"],
    "a request that arrived on port 443 is not labelled http",
);
pub(crate) const REMOTE_ADDR_UNSPECIFIED: Rule = Rule::server(
    "remote_addr_unspecified",
    &["RGI-ENV-6"],
    "remote_addr is a real peer address (not 0.0.0.0, :: or port 0), or None",
);
pub(crate) const CONCURRENCY_CONTRADICTORY: Rule = Rule::server(
    "concurrency_contradictory",
    &["RGI-ENV-8"],
    "run_once and multithread are not both claimed",
);
pub(crate) const INPUT_ALREADY_READ: Rule = Rule::server(
    "input_already_read",
    &["RGI-INPUT-16", "RGI-ENV-10", "RGIA-INPUT-13"],
    "the input reaches the application unread, so its declared length is what it delivers",
);
pub(crate) const INPUT_TRUNCATION_UNTYPED: Rule = Rule::server(
    "input_truncation_untyped",
    &["RGI-INPUT-5"],
    "a body cut short of its declared length fails with InputError::Truncated",
);
pub(crate) const INPUT_ERROR_NOT_STICKY: Rule = Rule::server(
    "input_error_not_sticky",
    &["RGI-INPUT-5", "RGI-INPUT-2"],
    "after the input reported a truncated body, every later read fails too",
);

// ---- How the server drives a synchronous body (RGI-START, RGI-BODY) ----

pub(crate) const PULL_AFTER_END: Rule = Rule::server(
    "pull_after_end",
    &["RGI-BODY-2"],
    "the server never pulls a body after None, an error or a panic",
);
pub(crate) const CHUNK_NOT_SENT: Rule = Rule::server(
    "chunk_not_sent",
    &["RGI-BODY-4"],
    "each non-empty chunk reaches send_chunk before the next pull",
);
pub(crate) const HANDLE_STATE_LOST: Rule = Rule::server(
    "handle_state_lost",
    &["RGI-START-1"],
    "every handle lent for a pull comes from the request's own ResponseState",
);
pub(crate) const STATE_REUSED: Rule = Rule::server(
    "state_reused",
    &["RGI-APP-5", "RGI-START-1"],
    "call gets a handle over a fresh ResponseState, never one used before",
);
pub(crate) const BODY_KEPT: Rule = Rule::server(
    "body_kept",
    &["RGI-BODY-12", "RGI-BODY-11"],
    "every body is dropped; none is leaked or kept past the server's life",
);

// ---- What a synchronous application does (RGI-HEAD, RGI-START, ...) ----

pub(crate) const HEAD_INFORMATIONAL_STATUS: Rule = Rule::app(
    "head_informational_status",
    &["RGI-HEAD-1"],
    "the status given to start or replace is final, not 1xx",
);
pub(crate) const HEAD_HOP_BY_HOP: Rule = Rule::app(
    "head_hop_by_hop",
    &["RGI-HEAD-5"],
    "the head carries no hop-by-hop field",
);
pub(crate) const HEAD_CONTENT_LENGTH_INVALID: Rule = Rule::app(
    "head_content_length_invalid",
    &["RGI-HEAD-6"],
    "every content-length in the head is one decimal number, all equal",
);
pub(crate) const HEAD_CONTENT_LENGTH_ON_204: Rule = Rule::app(
    "head_content_length_on_204",
    &["RGI-HEAD-6"],
    "a 204 head carries no content-length",
);
pub(crate) const START_TWICE: Rule = Rule::app(
    "start_twice",
    &["RGI-START-7"],
    "the application calls start at most once per response",
);
pub(crate) const START_ERROR_IGNORED: Rule = Rule::app(
    "start_error_ignored",
    &["RGI-START-9"],
    "after a start error the application corrects the head or returns a failure",
);
pub(crate) const HEAD_ALREADY_SENT_SWALLOWED: Rule = Rule::app(
    "head_already_sent_swallowed",
    &["RGI-START-12", "RGI-START-11"],
    "HeadAlreadySent from replace is returned as the failure of the call or pull",
);
pub(crate) const OUTPUT_BEFORE_START: Rule = Rule::app(
    "output_before_start",
    &["RGI-START-3"],
    "no body data is yielded or written before the response is started",
);
pub(crate) const ENDED_WITHOUT_START: Rule = Rule::app(
    "ended_without_start",
    &["RGI-START-3", "RGI-FAIL-7"],
    "a body that ends normally has started the response",
);
pub(crate) const CONTENT_TYPE_MISSING: Rule = Rule::app(
    "content_type_missing",
    &["RGI-HEAD-11"],
    "a response with content carries content-type",
);
pub(crate) const CONTENT_LENGTH_EXCEEDED: Rule = Rule::app(
    "content_length_exceeded",
    &["RGI-CL-4"],
    "the application produces no more bytes than its declared content-length",
);
pub(crate) const CONTENT_LENGTH_SHORT: Rule = Rule::app(
    "content_length_short",
    &["RGI-CL-4"],
    "a body that ends has produced all the bytes of its declared content-length",
);
pub(crate) const CONTENT_IN_BODILESS_STATUS: Rule = Rule::app(
    "content_in_bodiless_status",
    &["RGI-BODY-19"],
    "no body bytes are yielded or written for 204 and 304",
);
pub(crate) const WRITE_AFTER_WRITE_ERROR: Rule = Rule::app(
    "write_after_write_error",
    &["RGI-WRITE-6"],
    "after write failed the application produces no more output",
);
pub(crate) const SIZE_HINT_OVERRUN: Rule = Rule::app(
    "size_hint_overrun",
    &["RGI-BODY-10"],
    "a body produces no more bytes than its size_hint promised",
);
pub(crate) const SIZE_HINT_SHORTFALL: Rule = Rule::app(
    "size_hint_shortfall",
    &["RGI-BODY-10"],
    "a body that ends has produced every byte its size_hint promised",
);
pub(crate) const HINTS_UNSTABLE: Rule = Rule::app(
    "hints_unstable",
    &["RGI-HINT-3"],
    "hints() returns the same value every time",
);
pub(crate) const HINTS_INPUT_NONE_BUT_READ: Rule = Rule::app(
    "hints_input_none_but_read",
    &["RGI-HINT-3"],
    "an application that declared InputUse::None never reads the input",
);
pub(crate) const TRUNCATED_BODY_ACCEPTED: Rule = Rule::app(
    "truncated_body_accepted",
    &["RGI-INPUT-6"],
    "after a truncated request body the application does not answer with success",
);
pub(crate) const BODY_DROP_PANICKED: Rule = Rule::app(
    "body_drop_panicked",
    &["RGI-BODY-13"],
    "dropping a body does not panic",
);
pub(crate) const APPLICATION_PANICKED: Rule = Rule::app(
    "application_panicked",
    &["RGI-FAIL-1"],
    "the application reports failures as errors, not panics",
);

// ---- What an asynchronous server hands in and how it polls ----

pub(crate) const CAPABILITIES_MISSING: Rule = Rule::server(
    "capabilities_missing",
    &["RGIA-CAP-1"],
    "an asynchronous application finds one Capabilities value in its environ",
);
pub(crate) const CAPABILITIES_VERSION: Rule = Rule::server(
    "capabilities_version",
    &["RGIA-VER-1", "RGIA-VER-3"],
    "Capabilities::spec_version is a 1.x version no newer than rgi_async::SPEC_VERSION",
);
pub(crate) const ASYNC_INPUT_BLOCKING_ONLY: Rule = Rule::server(
    "async_input_blocking_only",
    &["RGIA-INPUT-1"],
    "an asynchronous application gets an input with the non-blocking face",
);
pub(crate) const INPUT_PENDING_WITHOUT_WAKEUP: Rule = Rule::server(
    "input_pending_without_wakeup",
    &["RGIA-INPUT-2"],
    "the server's input source returns Pending only after registering the waker",
);
pub(crate) const POLL_AFTER_END: Rule = Rule::server(
    "poll_after_end",
    &["RGIA-POLL-6"],
    "the server never polls a body after Ready(None), an error, a switch or a panic",
);
pub(crate) const BUSY_POLLING: Rule = Rule::server(
    "busy_polling",
    &["RGIA-POLL-4"],
    "after Pending the server polls again only after a wake-up, not in a loop",
);
pub(crate) const ASYNC_CHUNK_NOT_SENT: Rule = Rule::server(
    "async_chunk_not_sent",
    &["RGIA-OUT-1"],
    "each non-empty chunk step reaches send_chunk before the next poll",
);
pub(crate) const ASYNC_HANDLE_STATE_LOST: Rule = Rule::server(
    "async_handle_state_lost",
    &["RGIA-POLL-1"],
    "every handle lent for a poll is built over the request's own ResponseState",
);
pub(crate) const ASYNC_STATE_REUSED: Rule = Rule::server(
    "async_state_reused",
    &["RGIA-APP-1"],
    "call gets a handle over the request's own, fresh ResponseState",
);
pub(crate) const WAKER_PANICKED: Rule = Rule::server(
    "waker_panicked",
    &["RGIA-POLL-5"],
    "waking a request's waker is safe from any thread at any time, also after the body was dropped",
);
pub(crate) const ASYNC_BODY_KEPT: Rule = Rule::server(
    "async_body_kept",
    &["RGIA-POLL-7", "RGIA-TASK-4"],
    "every asynchronous body is dropped; none is leaked or kept past the server's life",
);
pub(crate) const SWITCH_BEFORE_DROP: Rule = Rule::server(
    "switch_before_drop",
    &["RGIA-SWITCH-2"],
    "the asynchronous body is dropped before the continuation runs",
);
pub(crate) const SWITCH_ON_LOOP_THREAD: Rule = Rule::server(
    "switch_on_loop_thread",
    &["RGIA-SWITCH-3"],
    "a continuation runs on a worker thread, not on a thread polling a live body",
);
pub(crate) const SWITCH_STATE_LOST: Rule = Rule::server(
    "switch_state_lost",
    &["RGIA-SWITCH-4"],
    "the continuation's handle carries the response state over from before the switch",
);
pub(crate) const OFFLOAD_ON_LOOP_THREAD: Rule = Rule::server(
    "offload_on_loop_thread",
    &["RGIA-OFFLOAD-1"],
    "an offload job runs on a worker thread, never inline in execute or on a loop thread",
);
pub(crate) const AFTER_TASK_INLINE: Rule = Rule::server(
    "after_task_inline",
    &["RGIA-AFTER-4"],
    "AfterResponse::spawn never runs the task on the calling thread",
);
pub(crate) const AFTER_TASK_EARLY: Rule = Rule::server(
    "after_task_early",
    &["RGIA-AFTER-1"],
    "an after-response task starts only once the response is complete",
);
pub(crate) const AFTER_TASK_ON_LOOP_THREAD: Rule = Rule::server(
    "after_task_on_loop_thread",
    &["RGIA-AFTER-2"],
    "an after-response task runs on a worker thread, not on a loop thread",
);
pub(crate) const UPGRADE_OFFERED_WRONGLY: Rule = Rule::server(
    "upgrade_offered_wrongly",
    &["RGIA-UPGRADE-1"],
    "the upgrade capability appears only on HTTP/1.1 requests that ask for an upgrade",
);
pub(crate) const UPGRADE_AFTER_HEAD_SENT: Rule = Rule::server(
    "upgrade_after_head_sent",
    &["RGIA-UPGRADE-2"],
    "accept fails once the head has been sent",
);
pub(crate) const READINESS_READY_FOR_FILE: Rule = Rule::server(
    "readiness_ready_for_file",
    &["RGIA-READY-10"],
    "a wait on a regular file or directory fails with Unpollable, never resolves Ready",
);
pub(crate) const READINESS_REFUSED_POLLABLE: Rule = Rule::server(
    "readiness_refused_pollable",
    &["RGIA-READY-9"],
    "a wait on a socket or pipe is never refused as Unpollable",
);
pub(crate) const READINESS_READY_SET_WRONG: Rule = Rule::server(
    "readiness_ready_set_wrong",
    &["RGIA-READY-1"],
    "a Ready outcome reports a requested direction, hangup or error",
);
pub(crate) const READINESS_ZERO_TIMEOUT_PENDING: Rule = Rule::server(
    "readiness_zero_timeout_pending",
    &["RGIA-READY-7"],
    "a wait with a zero timeout resolves at its first poll",
);
pub(crate) const READINESS_TIMED_OUT_EARLY: Rule = Rule::server(
    "readiness_timed_out_early",
    &["RGIA-READY-7", "RGIA-READY-16"],
    "a wait times out only after its timeout has elapsed since the first poll, never without one",
);
pub(crate) const WAIT_ANY_OUTCOME_INVALID: Rule = Rule::server(
    "wait_any_outcome_invalid",
    &["RGIA-READY-16"],
    "a wait_any Ready outcome lists at least one source, each by a valid index, once",
);
pub(crate) const READINESS_PANICKED: Rule = Rule::server(
    "readiness_panicked",
    &["RGIA-READY-18"],
    "a readiness wait never panics",
);
pub(crate) const CAPABILITY_PANICKED: Rule = Rule::server(
    "capability_panicked",
    &["RGIA-CAP-8"],
    "offload, after-response and upgrade handles fail with typed errors, never panic, also after the request",
);
pub(crate) const HOLLOW_CAPABILITY: Rule = Rule::server(
    "hollow_capability",
    &["RGIA-CAP-5"],
    "an offered capability never fails as unsupported",
);

// ---- What an asynchronous application does ----

pub(crate) const PENDING_WITHOUT_WAKEUP: Rule = Rule::app(
    "pending_without_wakeup",
    &["RGIA-APP-5"],
    "a body returns Pending only after arranging a wake-up of the current waker",
);
pub(crate) const SECOND_WAIT_ON_A_DESCRIPTOR: Rule = Rule::app(
    "second_wait_on_a_descriptor",
    &["RGIA-READY-20"],
    "one wait per descriptor at a time, and no descriptor twice in one wait_any",
);
pub(crate) const BLOCKING_READ_ON_LOOP_THREAD: Rule = Rule::app(
    "blocking_read_on_loop_thread",
    &["RGIA-INPUT-8", "RGIA-APP-2", "RGIA-APP-3"],
    "call and poll_step never use the blocking face of the input",
);
pub(crate) const WRITE_IN_ASYNC_CONTEXT: Rule = Rule::app(
    "write_in_async_context",
    &["RGIA-APP-9"],
    "an asynchronous application yields chunks instead of calling write",
);
pub(crate) const ASYNC_SIZE_HINT_OVERRUN: Rule = Rule::app(
    "async_size_hint_overrun",
    &["RGIA-APP-7"],
    "an asynchronous body produces no more bytes than its size_hint promised",
);
pub(crate) const ASYNC_SIZE_HINT_SHORTFALL: Rule = Rule::app(
    "async_size_hint_shortfall",
    &["RGIA-APP-7"],
    "an asynchronous body that ends has produced every byte its size_hint promised",
);
pub(crate) const SIZE_HINT_BEFORE_SWITCH: Rule = Rule::app(
    "size_hint_before_switch",
    &["RGIA-APP-7"],
    "a body that may still switch returns no size_hint",
);
pub(crate) const HTTP_AFTER_UPGRADE: Rule = Rule::app(
    "http_after_upgrade",
    &["RGIA-UPGRADE-5"],
    "after accepting an upgrade the application starts, writes, yields and switches nothing",
);
pub(crate) const UPGRADE_FROM_SYNC_CODE: Rule = Rule::app(
    "upgrade_from_sync_code",
    &["RGIA-COMP-3"],
    "a switch continuation does not accept an upgrade",
);

// ---- issue 11 §2: input over its whole life, declared environ properties ----

pub(crate) const BLOCKING_READ_WOULD_BLOCK: Rule = Rule::server(
    "blocking_read_would_block",
    &["RGI-INPUT-3"],
    "a read through the blocking face blocks: it never fails with WouldBlock",
);
pub(crate) const INPUT_ERROR_UNTYPED: Rule = Rule::server(
    "input_error_untyped",
    &["RGI-INPUT-17"],
    "a source that fails a read over the body's data carries a typed InputError (MalformedBody for bad framing)",
);
pub(crate) const INPUT_READ_AFTER_RESPONSE: Rule = Rule::server(
    "input_read_after_response",
    &["RGI-INPUT-15"],
    "once the response is over, a read that reaches the source gets ResponseFinished, never bytes",
);
pub(crate) const ASYNC_INPUT_READ_AFTER_RESPONSE: Rule = Rule::server(
    "async_input_read_after_response",
    &["RGIA-INPUT-16"],
    "once the response is over, a poll that reaches the source gets ResponseFinished, never bytes",
);
pub(crate) const SINGLE_THREAD_CLAIM_CONCURRENT_CALLS: Rule = Rule::server(
    "single_thread_claim_concurrent_calls",
    &["RGI-ENV-8"],
    "a request that says multithread is false runs while no call of the same application is in progress on another thread",
);
pub(crate) const RUN_ONCE_CALLED_AGAIN: Rule = Rule::server(
    "run_once_called_again",
    &["RGI-ENV-8"],
    "a request that says run_once is the first call of its application value",
);
pub(crate) const MW_INPUT_LENGTH_DISAGREES: Rule = Rule::server(
    "mw_input_length_disagrees",
    &["RGI-INPUT-16", "RGI-ENV-10"],
    "a middleware that replaces the input makes the content-length field agree with the new declared length",
);
pub(crate) const MW_INPUT_TRUNCATED: Rule = Rule::server(
    "mw_input_truncated",
    &["RGI-INPUT-16", "RGI-INPUT-5"],
    "an input a middleware installs delivers its declared length whenever the body it replaced was delivered whole",
);
pub(crate) const MW_EXTENSION_REMOVED: Rule = Rule::server(
    "mw_extension_removed",
    &["RGI-MW-11"],
    "a middleware leaves in place the extension values it does not understand",
);
pub(crate) const READ_BEFORE_REFUSING: Rule = Rule::app(
    "read_before_refusing",
    &["RGI-INPUT-25"],
    "an application refusing a request with Expect: 100-continue for a reason the head shows answers before reading",
);
pub(crate) const ZERO_SIZED_POLL: Rule = Rule::app(
    "zero_sized_poll",
    &["RGIA-INPUT-9"],
    "the application never calls poll_chunk with max 0",
);

// ---- issue 11 §2: capabilities, upgrade, switch, offload, after-response ----

pub(crate) const FAILS_ON_SPURIOUS_POLL: Rule = Rule::app(
    "fails_on_spurious_poll",
    &["RGIA-APP-6", "RGIA-POLL-4"],
    "a body polled without a wake-up (a spurious poll) does not fail because of it",
);
pub(crate) const CAPABILITIES_REMOVED: Rule = Rule::server(
    "capabilities_removed",
    &["RGIA-CAP-10"],
    "a middleware passes inward the Capabilities it was given (or its own set)",
);
pub(crate) const UPGRADE_UNAVAILABLE_FAILED: Rule = Rule::app(
    "upgrade_unavailable_failed",
    &["RGIA-UPGRADE-11"],
    "a request asking for an upgrade the server cannot provide is answered 501, not failed",
);

// ---- issue 11 §2: time and stalls ----

pub(crate) const ASYNC_CALL_BLOCKED: Rule = Rule::app(
    "async_call_blocked",
    &["RGIA-APP-2"],
    "an asynchronous application's call does not keep its thread blocked beyond the watchdog's allowance",
);
pub(crate) const ASYNC_POLL_BLOCKED: Rule = Rule::app(
    "async_poll_blocked",
    &["RGIA-APP-3"],
    "an asynchronous body's poll_step does not keep its thread blocked beyond the watchdog's allowance",
);
pub(crate) const ASYNC_DROP_BLOCKED: Rule = Rule::app(
    "async_drop_blocked",
    &["RGIA-APP-3"],
    "an asynchronous body's Drop does not keep its thread blocked beyond the watchdog's allowance",
);
pub(crate) const NON_BLOCKING_HINT_BROKEN: Rule = Rule::app(
    "non_blocking_hint_broken",
    &["RGI-HINT-3"],
    "a synchronous application whose hints say may_block = false does not block in call or next_chunk",
);
pub(crate) const INLINE_SYNC_APP_BLOCKED: Rule = Rule::app(
    "inline_sync_app_blocked",
    &["RGI-HINT-3", "RGIA-APP-2", "RGIA-APP-3"],
    "a synchronous application that the threaded adapter runs inline, on the strength of its hints, does not block",
);
pub(crate) const SLOW_BODY_DROP: Rule = Rule::app(
    "slow_body_drop",
    &["RGI-BODY-13"],
    "a synchronous body's Drop returns promptly (within the watchdog's drop allowance)",
);
pub(crate) const BLOCKING_APP_ON_LOOP_THREAD: Rule = Rule::server(
    "blocking_app_on_loop_thread",
    &["RGI-HINT-5"],
    "a synchronous application whose hints allow blocking is not called or pulled inside an asynchronous call",
);
pub(crate) const MIDDLEWARE_PENDING_WITHOUT_CAUSE: Rule = Rule::app(
    "middleware_pending_without_cause",
    &["RGIA-COMP-9", "RGIA-APP-5"],
    "a middleware returns Pending only when the inner body (or a future it polled) did, never with no wake-up arranged",
);
pub(crate) const WAKE_HONOURED_LATE: Rule = Rule::server(
    "wake_honoured_late",
    &["RGIA-POLL-3"],
    "a woken body is polled again promptly (within the watchdog's late-wake allowance)",
);
pub(crate) const OFFLOAD_EXECUTE_BLOCKED: Rule = Rule::server(
    "offload_execute_blocked",
    &["RGIA-OFFLOAD-2"],
    "OffloadService::execute returns at once, never waiting for capacity",
);
pub(crate) const UPGRADE_PROTOCOL_NOT_NAMED: Rule = Rule::app(
    "upgrade_protocol_not_named",
    &["RGIA-UPGRADE-12"],
    "accepting an upgrade that offers several protocols names one of them in one Upgrade field",
);
pub(crate) const UPGRADE_CHOICE_NOT_ENFORCED: Rule = Rule::server(
    "upgrade_choice_not_enforced",
    &["RGIA-UPGRADE-3"],
    "accept refuses a protocol outside the offer, and no choice among several",
);
pub(crate) const AFTER_SPAWN_BLOCKED: Rule = Rule::server(
    "after_spawn_blocked",
    &["RGIA-AFTER-4"],
    "AfterResponse::spawn returns at once instead of blocking",
);
pub(crate) const READINESS_TIMEOUT_MISSED: Rule = Rule::server(
    "readiness_timeout_missed",
    &["RGIA-READY-7"],
    "a wait with a timeout has resolved by the time it is dropped, long after the timeout elapsed",
);
pub(crate) const READINESS_PENDING_WITHOUT_WAKEUP: Rule = Rule::server(
    "readiness_pending_without_wakeup",
    &["RGIA-READY-1"],
    "a readiness wait that returns Pending keeps the waker it was polled with, so that it can resolve",
);

// ---- issue 11 §2: output after the head, middleware attribution ----

pub(crate) const MW_PULLS_IN_CALL: Rule = Rule::app(
    "mw_pulls_in_call",
    &["RGI-MW-6"],
    "a middleware's call returns when the inner call returns, without pulling the inner body",
);
pub(crate) const MW_SEVERAL_PER_STEP: Rule = Rule::app(
    "mw_several_per_step",
    &["RGI-MW-5", "RGI-SSE-5"],
    "each pull of a middleware body pulls at most one inner chunk",
);
pub(crate) const ASYNC_MW_SEVERAL_PER_STEP: Rule = Rule::app(
    "async_mw_several_per_step",
    &["RGIA-COMP-10", "RGI-SSE-5"],
    "an asynchronous middleware yields a step for every inner step before polling the inner body again",
);
pub(crate) const ASYNC_MW_RUNS_CONTINUATION: Rule = Rule::app(
    "async_mw_runs_continuation",
    &["RGIA-COMP-11"],
    "an asynchronous middleware passes a switch on instead of running the continuation itself",
);
pub(crate) const ASYNC_MW_PENDING_AS_STEP: Rule = Rule::app(
    "async_mw_pending_as_step",
    &["RGIA-COMP-9"],
    "an asynchronous middleware never turns an inner Pending into a step",
);
pub(crate) const MW_SWALLOWS_FAILURE: Rule = Rule::app(
    "mw_swallows_failure",
    &["RGI-MW-9", "RGIA-COMP-12"],
    "a middleware passes on an inner failure after the head was sent as its own failure",
);
pub(crate) const MW_HEAD_NOT_INTERCEPTED: Rule = Rule::app(
    "mw_head_not_intercepted",
    &["RGI-MW-3"],
    "a middleware changes the inner head by interception, not by starting or replacing it itself",
);
pub(crate) const MW_WRITES_INNER_CHUNK: Rule = Rule::app(
    "mw_writes_inner_chunk",
    &["RGI-MW-4", "RGIA-COMP-12"],
    "a middleware returns the inner chunks from its body, never through the outer write",
);
pub(crate) const MW_LENGTH_UNTRUE: Rule = Rule::app(
    "mw_length_untrue",
    &["RGI-MW-8", "RGIA-COMP-12"],
    "a middleware that changes the content corrects the content-length and does not forward the inner size hint",
);
pub(crate) const MW_HINTS_UNDERSTATED: Rule = Rule::app(
    "mw_hints_understated",
    &["RGI-HINT-8"],
    "a middleware's hints cover the application it wraps: input use and blocking at least as demanding",
);
pub(crate) const MW_INNER_BODY_NOT_DROPPED: Rule = Rule::server(
    "mw_inner_body_not_dropped",
    &["RGI-MW-7"],
    "a middleware body drops the inner body (at the latest when it is dropped itself)",
);
pub(crate) const ASYNC_MW_INNER_BODY_NOT_DROPPED: Rule = Rule::server(
    "async_mw_inner_body_not_dropped",
    &["RGIA-COMP-12", "RGI-MW-7"],
    "an asynchronous middleware drops the inner body exactly once when it is dropped itself",
);
pub(crate) const PULL_AFTER_NOT_STARTED: Rule = Rule::server(
    "pull_after_not_started",
    &["RGI-FAIL-7"],
    "after a chunk of a response that was never started the server stops pulling",
);
pub(crate) const PULL_AFTER_EXCESS: Rule = Rule::server(
    "pull_after_excess",
    &["RGI-CL-2"],
    "after a chunk past the declared content-length the server stops pulling",
);
pub(crate) const PULL_AFTER_BODILESS_CONTENT: Rule = Rule::server(
    "pull_after_bodiless_content",
    &["RGI-BODY-18"],
    "after content in a 204 or 304 response the server stops pulling",
);
pub(crate) const UNSTARTED_BODY_NOT_PULLED: Rule = Rule::server(
    "unstarted_body_not_pulled",
    &["RGI-START-5"],
    "a response not started in call is not an error: the server pulls the body",
);
pub(crate) const BODY_KEPT_AFTER_END: Rule = Rule::server(
    "body_kept_after_end",
    &["RGI-BODY-12"],
    "a body that ended is dropped before the thread that drove it serves the next request",
);
pub(crate) const OUTPUT_TRANSFER_CODED: Rule = Rule::app(
    "output_transfer_coded",
    &["RGI-BODY-9"],
    "the application does not chunk-encode its output",
);
pub(crate) const TINY_CHUNKS: Rule = Rule::app(
    "tiny_chunks",
    &["RGI-BODY-8"],
    "a body yields chunks of useful size rather than many tiny ones (a warning)",
);
pub(crate) const OUTPUT_ALL_WRITTEN: Rule = Rule::app(
    "output_all_written",
    &["RGI-WRITE-5"],
    "an application returns its output from the body rather than pushing it all with write (a warning)",
);
pub(crate) const CLIENT_FAULT_HIDDEN: Rule = Rule::app(
    "client_fault_hidden",
    &["RGI-FAIL-12"],
    "an application that gives up after a client-fault input error returns that error (a warning)",
);
pub(crate) const HEAD_DIFFERS_FROM_GET: Rule = Rule::app(
    "head_differs_from_get",
    &["RGI-BODY-17"],
    "a HEAD request gets the status a GET of the same target gets (a warning)",
);

// ---- issue 11 §2: the source contract ----

pub(crate) const SOURCE_OVERDELIVERED: Rule = Rule::server(
    "source_overdelivered",
    &["RGIA-INPUT-2"],
    "the server's input source returns at most the max it is polled with",
);

// ---- issue 11 §2: hooks ----

pub(crate) const HEAD_STATE_NOT_HEAD: Rule = Rule::server(
    "head_state_not_head",
    &["RGI-BODY-15"],
    "the response state of a HEAD request is made for HEAD, so no body bytes are sent",
);
pub(crate) const HEAD_STATE_FOR_OTHER_METHOD: Rule = Rule::server(
    "head_state_for_other_method",
    &["RGI-ENV-3"],
    "the environ's method is the one the response state was made for: HEAD stays HEAD, nothing is mapped to it",
);
#[cfg(feature = "tokio-context")]
pub(crate) const RUNTIME_CONTEXT_NOT_ENTERED: Rule = Rule::server(
    "runtime_context_not_entered",
    &["RGIA-RT-1"],
    "a server declaring Runtime::Tokio calls, polls and drops with tokio's context entered",
);

// ---- issue 11 §2: diagnosis by replay ----
// Reported by the test clients (`client::diagnose`), not by the validator
// itself: a request the application failed before its head succeeded when
// replayed with one circumstance changed.
pub(crate) const CONTENT_LENGTH_ASSUMED: Rule = Rule::app(
    "content_length_assumed",
    &["RGI-INPUT-10"],
    "an application that fails a body without a declared length succeeds with one: it assumes content_length() is known (test clients, by replay)",
);
pub(crate) const CAPABILITY_ASSUMED: Rule = Rule::app(
    "capability_assumed",
    &["RGIA-CAP-6"],
    "an application that fails without an optional capability succeeds with it: it does not handle the absence (test clients, by replay)",
);
pub(crate) const EXTENSION_ASSUMED: Rule = Rule::app(
    "extension_assumed",
    &["RGI-EXT-3"],
    "an application that fails without an optional extension succeeds with it: it has no fallback (test clients, by replay)",
);

// ---- RGI 1.2: optional features (spec/rgi.md §16, spec/rgi-async.md §19) ----

pub(crate) const EARLY_HINTS_AFTER_HEAD: Rule = Rule::app(
    "early_hints_after_head",
    &["RGI-EARLY-1"],
    "the application sends 103 Early Hints only while the final head is unsent",
);
pub(crate) const EARLY_HINTS_INVALID_FIELD: Rule = Rule::app(
    "early_hints_invalid_field",
    &["RGI-EARLY-2"],
    "a 103 carries no Content-Length, Transfer-Encoding, Trailer or connection-specific field",
);
pub(crate) const TRAILERS_FORBIDDEN_FIELD: Rule = Rule::app(
    "trailers_forbidden_field",
    &["RGI-TRAILER-4", "RGIA-TRAILER-1"],
    "response trailers hold no field that rgi::is_forbidden_trailer names",
);
pub(crate) const TRAILERS_TWICE: Rule = Rule::app(
    "trailers_twice",
    &["RGI-TRAILER-4", "RGIA-TRAILER-1"],
    "a response's trailers are given once",
);
pub(crate) const TRAILERS_NOT_ANNOUNCED: Rule = Rule::app(
    "trailers_not_announced",
    &["RGI-TRAILER-5"],
    "an application that sends trailers announces them with a Trailer field in its head",
);
pub(crate) const TRAILERS_READ_BEFORE_END: Rule = Rule::app(
    "trailers_read_before_end",
    &["RGI-TRAILER-3"],
    "the application asks for the request trailers only after the body's end (seen when it fails with BodyNotFinished)",
);
pub(crate) const EVENT_STREAM_HEAD_INVALID: Rule = Rule::app(
    "event_stream_head_invalid",
    &["RGI-SSE-2"],
    "an event-stream head has status 200, Cache-Control: no-cache, no Content-Length and no exact size hint",
);
pub(crate) const EVENT_STREAM_MALFORMED: Rule = Rule::app(
    "event_stream_malformed",
    &["RGI-SSE-1"],
    "an event stream is made of whole frames as Event::to_bytes writes them, each ended by a blank line",
);
pub(crate) const ASYNC_EVENT_NOT_ONE_CHUNK: Rule = Rule::app(
    "async_event_not_one_chunk",
    &["RGIA-SSE-1"],
    "an asynchronous event-stream body yields every event as a chunk of its own, ending at the event's blank line",
);
pub(crate) const MW_TRAILERS_DROPPED: Rule = Rule::app(
    "mw_trailers_dropped",
    &["RGI-TRAILER-2"],
    "a middleware that replaces the input keeps the request trailers of the original",
);
pub(crate) const MW_STARTUP_NOT_FORWARDED: Rule = Rule::app(
    "mw_startup_not_forwarded",
    &["RGI-LIFE-4", "RGIA-LIFE-2"],
    "a middleware's startup calls the startup of the application it wraps",
);
pub(crate) const MW_SHUTDOWN_NOT_FORWARDED: Rule = Rule::app(
    "mw_shutdown_not_forwarded",
    &["RGI-LIFE-4", "RGIA-LIFE-2"],
    "a middleware's shutdown calls the shutdown of the application it wraps",
);
pub(crate) const HOP_BY_HOP_RELIED_ON: Rule = Rule::app(
    "hop_by_hop_relied_on",
    &["RGI-HDR-7"],
    "an application answers the same with and without the request's connection-specific fields, when it answers the same to the request repeated (test clients, by replay)",
);
pub(crate) const OFFLOAD_JOBS_INTERDEPENDENT: Rule = Rule::app(
    "offload_jobs_interdependent",
    &["RGIA-OFFLOAD-11"],
    "an application that ran two offload jobs or more answers the same when they run one at a time on one thread, when it answers the same to the request repeated (asynchronous test client, by replay)",
);
pub(crate) const FEATURE_ASSUMED: Rule = Rule::app(
    "feature_assumed",
    &["RGI-FEAT-2"],
    "an application that fails without the optional features succeeds with them: it does not degrade (test clients, by replay)",
);
pub(crate) const CALLED_BEFORE_STARTUP: Rule = Rule::server(
    "called_before_startup",
    &["RGI-LIFE-1", "RGIA-LIFE-1"],
    "a server that declares lifespan calls the application only after its startup returned Ok",
);
pub(crate) const STARTUP_TWICE: Rule = Rule::server(
    "startup_twice",
    &["RGI-LIFE-1", "RGIA-LIFE-1"],
    "startup is called once per application",
);
pub(crate) const STARTUP_STATE_MISSING: Rule = Rule::server(
    "startup_state_missing",
    &["RGI-LIFE-1"],
    "every request is served with the ServerInfo run_startup returned, so start-up state reaches it",
);
pub(crate) const CALLED_AFTER_FAILED_STARTUP: Rule = Rule::server(
    "called_after_failed_startup",
    &["RGI-LIFE-2"],
    "a server whose start-up failed serves no request",
);
pub(crate) const SHUTDOWN_WITHOUT_STARTUP: Rule = Rule::server(
    "shutdown_without_startup",
    &["RGI-LIFE-3", "RGI-LIFE-2"],
    "shutdown is called only after a startup that returned Ok",
);
pub(crate) const SHUTDOWN_TWICE: Rule = Rule::server(
    "shutdown_twice",
    &["RGI-LIFE-3", "RGIA-LIFE-1"],
    "shutdown is called once",
);
pub(crate) const SHUTDOWN_BEFORE_LAST_RESPONSE: Rule = Rule::server(
    "shutdown_before_last_response",
    &["RGI-LIFE-3"],
    "shutdown comes after the last response ended and its body was dropped",
);
pub(crate) const CALLED_AFTER_SHUTDOWN: Rule = Rule::server(
    "called_after_shutdown",
    &["RGI-LIFE-3"],
    "no request is served once shutdown began",
);
pub(crate) const TRAILERS_ENABLED_WRONGLY: Rule = Rule::server(
    "trailers_enabled_wrongly",
    &["RGI-TRAILER-7"],
    "trailers are deliverable only on HTTP/2 and later, or HTTP/1.1 with TE: trailers, and never for HEAD",
);
pub(crate) const EARLY_HINTS_ON_HTTP10: Rule = Rule::server(
    "early_hints_on_http10",
    &["RGI-EARLY-3", "RGI-EARLY-4"],
    "early hints are never deliverable to an HTTP/1.0 request",
);
pub(crate) const FEATURE_UNDECLARED: Rule = Rule::server(
    "feature_undeclared",
    &["RGI-FEAT-1"],
    "a server provides no optional feature it does not declare: undeclared trailers and early hints are not deliverable, an input carries no undeclared trailers",
);

/// Every rule, in the order of [`super::CHECKS`].
pub(crate) const RULES: &[Rule] = &[
    HOST_MISSING,
    HOST_REPEATED,
    HOST_INVALID,
    ABSOLUTE_FORM_HOST,
    TRANSFER_ENCODING_LEFT,
    CONTENT_LENGTH_FIELD_INVALID,
    CONTENT_LENGTH_DISAGREES,
    SERVER_NAME_INVALID,
    SERVER_PORT_ZERO,
    HTTP_SCHEME_ON_TLS_PORT,
    REMOTE_ADDR_UNSPECIFIED,
    CONCURRENCY_CONTRADICTORY,
    INPUT_ALREADY_READ,
    INPUT_TRUNCATION_UNTYPED,
    INPUT_ERROR_NOT_STICKY,
    PULL_AFTER_END,
    CHUNK_NOT_SENT,
    HANDLE_STATE_LOST,
    STATE_REUSED,
    BODY_KEPT,
    HEAD_INFORMATIONAL_STATUS,
    HEAD_HOP_BY_HOP,
    HEAD_CONTENT_LENGTH_INVALID,
    HEAD_CONTENT_LENGTH_ON_204,
    START_TWICE,
    START_ERROR_IGNORED,
    HEAD_ALREADY_SENT_SWALLOWED,
    OUTPUT_BEFORE_START,
    ENDED_WITHOUT_START,
    CONTENT_TYPE_MISSING,
    CONTENT_LENGTH_EXCEEDED,
    CONTENT_LENGTH_SHORT,
    CONTENT_IN_BODILESS_STATUS,
    WRITE_AFTER_WRITE_ERROR,
    SIZE_HINT_OVERRUN,
    SIZE_HINT_SHORTFALL,
    HINTS_UNSTABLE,
    HINTS_INPUT_NONE_BUT_READ,
    TRUNCATED_BODY_ACCEPTED,
    BODY_DROP_PANICKED,
    APPLICATION_PANICKED,
    CAPABILITIES_MISSING,
    CAPABILITIES_VERSION,
    ASYNC_INPUT_BLOCKING_ONLY,
    INPUT_PENDING_WITHOUT_WAKEUP,
    POLL_AFTER_END,
    BUSY_POLLING,
    ASYNC_CHUNK_NOT_SENT,
    ASYNC_HANDLE_STATE_LOST,
    ASYNC_STATE_REUSED,
    WAKER_PANICKED,
    ASYNC_BODY_KEPT,
    SWITCH_BEFORE_DROP,
    SWITCH_ON_LOOP_THREAD,
    SWITCH_STATE_LOST,
    OFFLOAD_ON_LOOP_THREAD,
    AFTER_TASK_INLINE,
    AFTER_TASK_EARLY,
    AFTER_TASK_ON_LOOP_THREAD,
    UPGRADE_OFFERED_WRONGLY,
    UPGRADE_AFTER_HEAD_SENT,
    READINESS_READY_FOR_FILE,
    READINESS_REFUSED_POLLABLE,
    READINESS_READY_SET_WRONG,
    READINESS_ZERO_TIMEOUT_PENDING,
    READINESS_TIMED_OUT_EARLY,
    WAIT_ANY_OUTCOME_INVALID,
    READINESS_PANICKED,
    CAPABILITY_PANICKED,
    HOLLOW_CAPABILITY,
    PENDING_WITHOUT_WAKEUP,
    SECOND_WAIT_ON_A_DESCRIPTOR,
    BLOCKING_READ_ON_LOOP_THREAD,
    WRITE_IN_ASYNC_CONTEXT,
    ASYNC_SIZE_HINT_OVERRUN,
    ASYNC_SIZE_HINT_SHORTFALL,
    SIZE_HINT_BEFORE_SWITCH,
    HTTP_AFTER_UPGRADE,
    UPGRADE_FROM_SYNC_CODE,
    // ---- issue 11 §2: input over its whole life, declared environ properties ----
    BLOCKING_READ_WOULD_BLOCK,
    INPUT_ERROR_UNTYPED,
    INPUT_READ_AFTER_RESPONSE,
    ASYNC_INPUT_READ_AFTER_RESPONSE,
    SINGLE_THREAD_CLAIM_CONCURRENT_CALLS,
    RUN_ONCE_CALLED_AGAIN,
    MW_INPUT_LENGTH_DISAGREES,
    MW_INPUT_TRUNCATED,
    MW_EXTENSION_REMOVED,
    READ_BEFORE_REFUSING,
    ZERO_SIZED_POLL,
    // ---- issue 11 §2: capabilities, upgrade, switch, offload, after-response ----
    FAILS_ON_SPURIOUS_POLL,
    CAPABILITIES_REMOVED,
    UPGRADE_UNAVAILABLE_FAILED,
    OFFLOAD_EXECUTE_BLOCKED,
    UPGRADE_PROTOCOL_NOT_NAMED,
    UPGRADE_CHOICE_NOT_ENFORCED,
    // ---- issue 11 §2: time and stalls ----
    ASYNC_CALL_BLOCKED,
    ASYNC_POLL_BLOCKED,
    ASYNC_DROP_BLOCKED,
    NON_BLOCKING_HINT_BROKEN,
    INLINE_SYNC_APP_BLOCKED,
    SLOW_BODY_DROP,
    BLOCKING_APP_ON_LOOP_THREAD,
    READINESS_PENDING_WITHOUT_WAKEUP,
    MIDDLEWARE_PENDING_WITHOUT_CAUSE,
    WAKE_HONOURED_LATE,
    AFTER_SPAWN_BLOCKED,
    READINESS_TIMEOUT_MISSED,
    // ---- issue 11 §2: output after the head, middleware attribution ----
    MW_PULLS_IN_CALL,
    MW_SEVERAL_PER_STEP,
    ASYNC_MW_SEVERAL_PER_STEP,
    ASYNC_MW_RUNS_CONTINUATION,
    ASYNC_MW_PENDING_AS_STEP,
    MW_SWALLOWS_FAILURE,
    MW_HEAD_NOT_INTERCEPTED,
    MW_WRITES_INNER_CHUNK,
    MW_LENGTH_UNTRUE,
    MW_HINTS_UNDERSTATED,
    MW_INNER_BODY_NOT_DROPPED,
    ASYNC_MW_INNER_BODY_NOT_DROPPED,
    PULL_AFTER_NOT_STARTED,
    PULL_AFTER_EXCESS,
    PULL_AFTER_BODILESS_CONTENT,
    UNSTARTED_BODY_NOT_PULLED,
    BODY_KEPT_AFTER_END,
    OUTPUT_TRANSFER_CODED,
    TINY_CHUNKS,
    OUTPUT_ALL_WRITTEN,
    CLIENT_FAULT_HIDDEN,
    HEAD_DIFFERS_FROM_GET,
    // ---- issue 11 §2: the source contract ----
    SOURCE_OVERDELIVERED,
    // ---- issue 11 §2: hooks ----
    HEAD_STATE_NOT_HEAD,
    HEAD_STATE_FOR_OTHER_METHOD,
    #[cfg(feature = "tokio-context")]
    RUNTIME_CONTEXT_NOT_ENTERED,
    // ---- issue 11 §2: diagnosis by replay ----
    CONTENT_LENGTH_ASSUMED,
    CAPABILITY_ASSUMED,
    EXTENSION_ASSUMED,
    HOP_BY_HOP_RELIED_ON,
    OFFLOAD_JOBS_INTERDEPENDENT,
    // ---- RGI 1.2: optional features ----
    EARLY_HINTS_AFTER_HEAD,
    EARLY_HINTS_INVALID_FIELD,
    TRAILERS_FORBIDDEN_FIELD,
    TRAILERS_TWICE,
    TRAILERS_NOT_ANNOUNCED,
    TRAILERS_READ_BEFORE_END,
    EVENT_STREAM_HEAD_INVALID,
    EVENT_STREAM_MALFORMED,
    ASYNC_EVENT_NOT_ONE_CHUNK,
    MW_TRAILERS_DROPPED,
    MW_STARTUP_NOT_FORWARDED,
    MW_SHUTDOWN_NOT_FORWARDED,
    FEATURE_ASSUMED,
    CALLED_BEFORE_STARTUP,
    STARTUP_TWICE,
    STARTUP_STATE_MISSING,
    CALLED_AFTER_FAILED_STARTUP,
    SHUTDOWN_WITHOUT_STARTUP,
    SHUTDOWN_TWICE,
    SHUTDOWN_BEFORE_LAST_RESPONSE,
    CALLED_AFTER_SHUTDOWN,
    TRAILERS_ENABLED_WRONGLY,
    EARLY_HINTS_ON_HTTP10,
    FEATURE_UNDECLARED,
];
