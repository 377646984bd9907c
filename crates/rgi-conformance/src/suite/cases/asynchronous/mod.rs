//! The cases for asynchronous servers: one per server clause of
//! spec/rgi-async.md that can be observed from outside the server.
//!
//! Each case starts the server with an asynchronous probe application
//! ([`Probe::asynchronous`](crate::suite::Probe::asynchronous)), drives it
//! over a real socket on 127.0.0.1 with the suite's raw HTTP/1.1 client,
//! and judges both what reached the wire and what the probe saw inside the
//! server (thread ids, drops, wake-ups, the outcome of waits and offload
//! jobs), reported back through channels. Every wait is bounded, and the
//! server is stopped on every path.
//!
//! | Module | Area | Needs |
//! |---|---|---|
//! | `cap` | capabilities, versions | asynchronous (one case: any server) |
//! | `poll` | calling the application, driving bodies, scheduling, shutdown | asynchronous |
//! | `out` | streaming and backpressure | asynchronous |
//! | `input` | the non-blocking face of the input | asynchronous |
//! | `offload` | blocking work on worker threads | asynchronous |
//! | `switch` | the switch to synchronous processing | asynchronous |
//! | `ready` | readiness waits (Unix), and the shutdown of a request that waits | readiness |
//! | `after` | after-response tasks | after-response |
//! | `upgrade` | connection upgrade | upgrade |

mod after;
mod cap;
mod input;
mod offload;
mod out;
mod poll;
#[cfg(unix)]
mod ready;
mod support;
mod switch;
mod upgrade;

use crate::suite::Case;

/// The cases every platform runs, in the order of the macro's list.
const ANY: &[Case] = &[
    cap::ONE_CAPABILITY_SET_PER_REQUEST,
    cap::NO_CAPABILITIES_FROM_A_SYNCHRONOUS_SERVER,
    poll::ONE_CALL_PER_REQUEST,
    poll::A_FAILED_CALL_IS_NOT_RETRIED,
    poll::FAILURES_OF_CALL,
    poll::START_RESPONSE_ON_EVERY_POLL,
    poll::NO_BUSY_POLLING,
    poll::LATE_WAKE_UPS_ARE_HARMLESS,
    poll::NO_POLL_AFTER_THE_END,
    poll::DROPPED_BEFORE_THE_NEXT_REQUEST,
    poll::DROPPED_WHEN_THE_CLIENT_VANISHES,
    poll::POLL_FAILURES,
    poll::A_WAITING_REQUEST_BLOCKS_NO_ONE,
    poll::SHUTDOWN_DROPS_PARKED_BODIES,
    out::CHUNKS_ARE_STREAMED,
    out::EMPTY_CHUNKS_SEND_NOTHING,
    out::UNSENT_OUTPUT_IS_BOUNDED,
    out::HEAD_AND_LENGTH_RULES_APPLY,
    input::THE_INPUT_HAS_A_NON_BLOCKING_FACE,
    input::A_SLOW_UPLOAD_ARRIVES_PIECE_BY_PIECE,
    input::THE_BODY_ENDS_AT_ITS_BOUNDARY,
    input::A_TRUNCATED_UPLOAD_IS_AN_ERROR,
    input::THE_BODY_IS_READ_ON_DEMAND,
    input::CONTINUE_ON_FIRST_DEMAND,
    input::NOTHING_FROM_THE_NEXT_REQUEST,
    offload::JOBS_RUN_ON_WORKER_THREADS,
    offload::EXECUTE_NEVER_BLOCKS,
    offload::PANICS_BECOME_ERRORS,
    offload::NO_JOBS_AFTER_SHUTDOWN,
    switch::A_SWITCH_BEFORE_THE_HEAD,
    switch::THE_ASYNC_BODY_IS_DROPPED_FIRST,
    switch::CONTINUATIONS_RUN_ON_WORKER_THREADS,
    switch::A_STORED_HEAD_CARRIES_OVER,
    switch::SENT_OUTPUT_CARRIES_OVER,
    switch::CONTINUATION_FAILURES,
    switch::BLOCKING_INPUT_OVER_THE_REMAINDER,
    after::TASKS_RUN_AFTER_THE_RESPONSE,
    after::TASKS_RUN_WITHOUT_THE_CLIENT,
    after::A_PANICKING_TASK_IS_CONTAINED,
    after::NO_TASKS_AFTER_SHUTDOWN,
    upgrade::OFFERED_ONLY_WHEN_ASKED,
    upgrade::NO_101_AFTER_THE_HEAD,
    upgrade::SEVERAL_OFFERS_NEED_A_CHOICE,
    upgrade::THE_101_THEN_THE_STREAM,
    upgrade::HTTP_OUTPUT_AFTER_ACCEPT_CLOSES,
    upgrade::A_FAILED_HAND_OVER_IS_REPORTED,
];

/// The cases that need Unix descriptors (pipes, files, directories).
#[cfg(unix)]
const UNIX: &[Case] = &[
    ready::A_PIPE_WAIT_WAKES_THE_BODY,
    ready::WAITS_ARE_LEVEL_TRIGGERED,
    ready::HANGUP_IS_REPORTED,
    ready::TIMEOUTS_ARE_KEPT,
    ready::FILES_ARE_UNPOLLABLE,
    ready::A_DROPPED_WAIT_IS_DEREGISTERED,
    ready::A_LEAKED_WAIT_IS_HARMLESS,
    ready::A_LEAKED_WAIT_HOLDS_NOTHING_OPEN,
    ready::WAIT_ANY_REPORTS_WHICH_SOURCE,
    ready::SHUTDOWN_LEAVES_DESCRIPTORS_ALONE,
];

/// The cases that need Unix descriptors (none elsewhere).
#[cfg(not(unix))]
const UNIX: &[Case] = &[];

/// Both lists, as one array.
const ALL: [Case; ANY.len() + UNIX.len()] = joined(ANY, UNIX);

/// The asynchronous cases of the suite, in a stable order.
pub(crate) const ASYNC_CASES: &[Case] = &ALL;

/// `first` followed by `second`; `N` is their total length and `first` is
/// not empty (both checked when the constant is evaluated).
const fn joined<const N: usize>(first: &[Case], second: &[Case]) -> [Case; N] {
    let mut all = [first[0]; N];
    let mut index = 0;
    while index < N {
        all[index] = if index < first.len() {
            first[index]
        } else {
            second[index - first.len()]
        };
        index += 1;
    }
    all
}

/// One `#[test]` per asynchronous case, for `server_suite!`: each runs the
/// case against a fresh server from `$factory` through
/// `$crate::suite::assert_case`. The names are those of [`ASYNC_CASES`] in
/// the same order (a unit test holds the two together); `@names` gives the
/// list as `(every platform, Unix only)`.
#[macro_export]
#[doc(hidden)]
macro_rules! __rgi_async_cases {
    ($factory:path) => {
        $crate::__rgi_async_cases!(@list tests [$factory]);
    };
    (@names) => {
        $crate::__rgi_async_cases!(@list names [])
    };
    (@list $mode:ident [$($arg:tt)*]) => {
        // Braces: the expansion is items for `tests`, an expression for
        // `names`.
        $crate::__rgi_async_cases! { @$mode [$($arg)*]
            any:
                rgia_cap_1_one_capability_set_per_request,
                rgia_cap_2_no_capabilities_from_a_synchronous_server,
                rgia_app_1_one_call_per_request,
                rgia_app_1_a_failed_call_is_not_retried,
                rgia_app_4_failures_of_call_get_a_500,
                rgia_poll_1_a_start_response_on_every_poll,
                rgia_poll_4_no_busy_polling,
                rgia_poll_5_late_wake_ups_are_harmless,
                rgia_poll_6_no_poll_after_the_end,
                rgia_poll_7_dropped_before_the_next_request,
                rgia_poll_7_dropped_when_the_client_vanishes,
                rgia_poll_8_poll_failures_follow_the_failure_rules,
                rgia_task_1_a_waiting_request_blocks_no_one,
                rgia_task_4_shutdown_drops_parked_bodies,
                rgia_out_4_chunks_are_streamed_as_produced,
                rgia_out_6_empty_chunks_send_nothing,
                rgia_out_2_unsent_output_is_bounded,
                rgia_out_9_head_and_length_rules_apply,
                rgia_input_1_the_input_has_a_non_blocking_face,
                rgia_input_3_a_slow_upload_arrives_piece_by_piece,
                rgia_input_4_the_body_ends_at_its_boundary,
                rgia_input_4_a_truncated_upload_is_an_error,
                rgia_input_10_the_body_is_read_on_demand,
                rgia_input_11_continue_on_first_demand,
                rgia_input_16_nothing_from_the_next_request,
                rgia_offload_1_jobs_run_on_worker_threads,
                rgia_offload_2_execute_never_blocks,
                rgia_offload_6_panics_become_errors,
                rgia_offload_9_no_jobs_after_shutdown,
                rgia_switch_1_a_switch_before_the_head,
                rgia_switch_2_the_async_body_is_dropped_first,
                rgia_switch_3_continuations_run_on_worker_threads,
                rgia_switch_4_a_stored_head_carries_over,
                rgia_switch_4_sent_output_carries_over,
                rgia_switch_5_continuation_failures,
                rgia_switch_6_blocking_input_over_the_remainder,
                rgia_after_1_tasks_run_after_the_response,
                rgia_after_1_tasks_run_without_the_client,
                rgia_after_2_a_panicking_task_is_contained,
                rgia_after_5_no_tasks_after_shutdown,
                rgia_upgrade_1_offered_only_when_asked,
                rgia_upgrade_2_no_101_after_the_head,
                rgia_upgrade_3_several_offers_need_a_choice,
                rgia_upgrade_4_the_101_then_the_stream,
                rgia_upgrade_6_http_output_after_accept_closes,
                rgia_upgrade_9_a_failed_hand_over_is_reported;
            unix:
                rgia_ready_1_a_pipe_wait_wakes_the_body,
                rgia_ready_2_waits_are_level_triggered,
                rgia_ready_6_hangup_is_reported,
                rgia_ready_7_timeouts_are_kept,
                rgia_ready_10_files_are_unpollable,
                rgia_ready_12_a_dropped_wait_is_deregistered,
                rgia_ready_13_a_leaked_wait_is_harmless,
                rgia_ready_19_a_leaked_wait_holds_nothing_open,
                rgia_ready_16_wait_any_reports_which_source,
                rgia_task_5_shutdown_leaves_descriptors_alone;
        }
    };
    (@tests [$factory:path] any: $($any:ident),* ; unix: $($unix:ident),* ;) => {
        $(
            #[test]
            fn $any() {
                $crate::suite::assert_case_declaring(
                    ::core::stringify!($any),
                    &$factory(),
                    RGI_DECLARED_SKIPS,
                );
            }
        )*
        $(
            #[cfg(unix)]
            #[test]
            fn $unix() {
                $crate::suite::assert_case_declaring(
                    ::core::stringify!($unix),
                    &$factory(),
                    RGI_DECLARED_SKIPS,
                );
            }
        )*
    };
    (@names [] any: $($any:ident),* ; unix: $($unix:ident),* ;) => {
        (
            [$(::core::stringify!($any)),*],
            [$(::core::stringify!($unix)),*],
        )
    };
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::ASYNC_CASES;
    use crate::catalogue::{self, Party};
    use crate::suite::Needs;

    #[test]
    fn the_macro_names_every_case_in_order() {
        let (any, unix) = crate::__rgi_async_cases!(@names);
        let mut names: Vec<&str> = any.to_vec();
        if cfg!(unix) {
            names.extend(unix);
        }
        let cases: Vec<&str> = ASYNC_CASES.iter().map(crate::suite::Case::name).collect();
        assert_eq!(names, cases);
    }

    #[test]
    fn names_are_unique_and_start_with_the_main_clause() {
        let mut seen = HashSet::new();
        for case in ASYNC_CASES {
            assert!(seen.insert(case.name()), "{} twice", case.name());
            let main = case.check().clauses()[0];
            let prefix = format!("{}_", main.to_lowercase().replace('-', "_"));
            assert!(
                case.name().starts_with(&prefix),
                "{} does not start with {prefix}",
                case.name()
            );
            assert!(
                case.name()
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_'),
                "{} is not snake_case",
                case.name()
            );
        }
    }

    #[test]
    fn every_cited_clause_exists_and_the_main_one_binds_the_server() {
        for case in ASYNC_CASES {
            for (index, id) in case.check().clauses().iter().enumerate() {
                let clause = catalogue::clause(id)
                    .unwrap_or_else(|| panic!("{}: {id} is not a clause", case.name()));
                if index == 0 {
                    assert!(
                        matches!(clause.party, Party::Server | Party::All),
                        "{}: its main clause {id} binds the {}",
                        case.name(),
                        clause.party
                    );
                }
            }
        }
    }

    #[test]
    fn needs_follow_the_area() {
        for case in ASYNC_CASES {
            let main = case.check().clauses()[0];
            // The shutdown of a request parked in a readiness wait needs
            // readiness too.
            let expected = if main.starts_with("RGIA-READY-") || main == "RGIA-TASK-5" {
                Needs::Readiness
            } else if main.starts_with("RGIA-AFTER-") {
                Needs::AfterResponse
            } else if main.starts_with("RGIA-UPGRADE-") {
                Needs::Upgrade
            } else if main == "RGIA-CAP-2" {
                Needs::Nothing
            } else {
                Needs::Asynchronous
            };
            assert_eq!(case.needs(), expected, "{}", case.name());
        }
    }
}
