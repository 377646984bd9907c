//! The cases of the synchronous interface (`spec/rgi.md`): one case per
//! server clause that can be checked from outside, through a socket.
//!
//! The list of case names lives in one place, the macro
//! [`__rgi_sync_cases!`](crate::__rgi_sync_cases): it builds
//! [`SYNC_CASES`] here and the test functions of
//! [`server_suite!`](crate::server_suite) in a server author's test file,
//! so the two cannot drift apart. Each name is also the name of the
//! `const fn` below that builds the case, whose check is named with
//! `stringify!` of the same identifier.

/// Defines the `const fn` that builds one synchronous case: its check is
/// named after the function, so the name is written once.
macro_rules! sync_case {
    ($name:ident needs $needs:ident [$($clause:literal),+ $(,)?] $title:literal => $run:path) => {
        #[doc = concat!("The case `", stringify!($name), "`.")]
        pub(super) const fn $name() -> $crate::suite::Case {
            $crate::suite::Case::new(
                $crate::Check::new(stringify!($name), &[$($clause),+], $title),
                $crate::suite::Needs::$needs,
                $run,
            )
        }
    };
    ($name:ident [$($clause:literal),+ $(,)?] $title:literal => $run:path) => {
        #[doc = concat!("The case `", stringify!($name), "`.")]
        pub(super) const fn $name() -> $crate::suite::Case {
            $crate::suite::Case::new(
                $crate::Check::new(stringify!($name), &[$($clause),+], $title),
                $crate::suite::Needs::Nothing,
                $run,
            )
        }
    };
}

mod body;
mod client_errors;
mod connection;
mod declared;
mod environ;
mod failure;
mod file;
mod headers;
mod input;
mod protocol;
mod response;

#[allow(
    clippy::wildcard_imports,
    reason = "the case list macro names every case function"
)]
use self::{
    body::*, client_errors::*, connection::*, declared::*, environ::*, failure::*, file::*,
    headers::*, input::*, protocol::*, response::*,
};
use crate::suite::Case;

/// The cases of the synchronous interface, in the suite's order.
pub(crate) const SYNC_CASES: &[Case] = crate::__rgi_sync_cases!(table);

/// The single list of synchronous case names, expanded by
/// [`__rgi_sync_case_list!`](crate::__rgi_sync_case_list) in one of three
/// modes: `(table)` (the cases, inside this crate), `(names)` (their names
/// as a `&[&str]`) and `(tests path::to::factory)` (one `#[test]` per case,
/// used by [`server_suite!`](crate::server_suite)).
#[doc(hidden)]
#[macro_export]
macro_rules! __rgi_sync_cases {
    ($($mode:tt)*) => {
        $crate::__rgi_sync_case_list! {
            ($($mode)*)
            // The request: environ, paths, header fields, errors, hints.
            rgi_env_3_method_and_version_as_received
            rgi_env_4_target_and_query_undecoded
            rgi_env_5_server_name_and_port
            rgi_env_6_remote_address_is_the_peer
            rgi_env_7_url_scheme_is_http_without_tls
            rgi_env_8_concurrency_facts
            rgi_env_10_content_length_from_framing
            rgi_env_1_malformed_request_rejected
            rgi_path_1_root_mount_gets_the_whole_path
            rgi_path_3_decoded_once_nothing_else
            rgi_path_3_bad_percent_encoding_is_400
            rgi_path_4_encoded_slash_does_not_split
            rgi_path_5_decoded_paths_are_bytes
            rgi_path_8_options_asterisk_form
            rgi_path_9_absolute_form_target
            rgi_path_10_connect_not_passed_on
            rgi_hdr_1_every_field_nothing_invented
            rgi_hdr_2_repeated_fields_stay_separate
            rgi_hdr_3_values_byte_exact
            rgi_hdr_4_framing_fields_kept_transfer_encoding_removed
            rgi_hdr_4_bad_content_length_is_400
            rgi_hdr_4_unknown_transfer_coding_is_501
            rgi_hdr_4_length_and_chunked_together
            rgi_hdr_5_host_checked
            // Protocol decisions and limits (RGI-PROTO, RGI-LIMIT).
            rgi_proto_1_host_present_single_valid
            rgi_proto_2_absolute_form_and_host
            rgi_proto_3_transfer_codings
            rgi_proto_4_content_length_strict
            rgi_proto_5_unknown_expectation_is_417
            rgi_proto_6_target_forms_match_methods
            rgi_proto_7_unsupported_version_is_505
            rgi_proto_8_field_syntax
            rgi_proto_9_request_line_syntax
            rgi_proto_10_refusals_close_no_smuggling
            rgi_limit_2_long_target_is_414
            rgi_limit_3_large_header_section_is_431
            rgi_limit_4_declared_body_over_limit_is_413
            rgi_limit_5_stalled_head_is_408
            rgi_limit_6_idle_connection_closed_silently
            rgi_errs_2_error_stream_accepts_any_bytes
            rgi_hint_6_hints_do_not_change_the_input
            rgi_hint_5_blocking_app_does_not_stall_others
            // The request body.
            rgi_input_3_content_length_body_read_exactly
            rgi_input_2_chunked_body_decoded
            rgi_input_4_end_of_body_is_eof_forever
            rgi_input_5_truncated_body_is_an_error
            rgi_input_2_truncated_chunked_body_is_an_error
            rgi_input_12_expect_100_continue_on_first_read
            rgi_input_13_no_100_continue_for_unread_body
            rgi_input_23_no_interim_response_on_http10
            rgi_input_15_reads_after_the_response_finished
            // The response head and write.
            rgi_start_2_status_sent_as_given
            rgi_head_8_fields_sent_as_given
            rgi_head_9_date_added
            rgi_start_5_response_started_in_the_body
            rgi_start_6_head_waits_for_first_data
            rgi_start_6_replaced_head_is_the_one_sent
            rgi_start_8_second_start_is_a_typed_error
            rgi_start_11_replace_after_head_sent_returns_the_cause
            rgi_write_2_written_data_reaches_the_client_before_write_returns
            rgi_write_3_written_data_precedes_yielded_data
            // The response body and its framing.
            rgi_body_3_chunks_are_opaque_bytes
            rgi_body_4_each_chunk_sent_before_the_next_pull
            rgi_body_4_slow_reader_bounds_buffered_output
            rgi_body_6_empty_chunks_send_nothing
            rgi_body_11_dropped_once_before_the_next_request
            rgi_body_15_head_request_sends_no_body
            rgi_body_18_no_content_for_204_and_304
            rgi_cl_1_never_more_than_declared
            rgi_cl_3_fewer_than_declared_closes
            rgi_cl_9_correct_framing
            rgi_cl_10_declared_length_joins_a_lazy_head
            rgi_cl_8_close_delimited_on_http10
            // File bodies.
            rgi_file_2_file_body_served_exactly
            rgi_file_5_file_range_and_head
            rgi_file_5_short_file_closes_the_connection
            // Failures, panics, disconnects.
            rgi_app_5_a_failed_call_is_not_retried
            rgi_fail_3_error_before_head_is_500
            rgi_fail_4_no_application_detail_in_error_response
            rgi_fail_2_panic_in_call_is_contained
            rgi_fail_2_panic_in_body_is_contained
            rgi_fail_2_panic_in_drop_is_contained
            rgi_fail_5_failure_after_head_ends_abnormally
            rgi_fail_6_no_error_text_after_the_head
            rgi_fail_7_output_without_start_is_500
            rgi_fail_10_client_body_error_answered_with_its_status
            rgi_limit_7_stalled_body_is_408
            rgi_fail_8_disconnect_drops_the_body_promptly
            rgi_fail_8_write_after_disconnect_is_a_transport_error
            // Connections.
            rgi_conn_1_unread_body_never_parsed_as_a_request
            rgi_conn_1_unread_chunked_body_never_parsed_as_a_request
            rgi_conn_2_keep_alive_serves_two_requests
            rgi_conn_2_connection_close_honoured
            rgi_conn_3_pipelined_requests_in_order_one_at_a_time
            rgi_conn_4_requests_are_isolated
            rgi_conn_5_shutdown_ends_in_flight_responses
        }
    };
}

/// Expands the list of [`__rgi_sync_cases!`](crate::__rgi_sync_cases) in
/// the mode given first.
#[doc(hidden)]
#[macro_export]
macro_rules! __rgi_sync_case_list {
    ((table) $($name:ident)*) => {
        &[$($name()),*]
    };
    ((names) $($name:ident)*) => {
        &[$(::core::stringify!($name)),*]
    };
    ((tests $factory:path) $($name:ident)*) => {
        $(
            #[test]
            fn $name() {
                $crate::suite::assert_case_declaring(
                    ::core::stringify!($name),
                    &$factory(),
                    RGI_DECLARED_SKIPS,
                );
            }
        )*
    };
}
