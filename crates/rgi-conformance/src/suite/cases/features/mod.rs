//! The cases of RGI 1.2's optional features (spec/rgi.md §16,
//! spec/rgi-async.md §19): what a server declares, request and response
//! trailers, `103 Early Hints`, the lifespan calls and server-sent events.
//!
//! A feature's cases need the server to claim it ([`Claims::features`],
//! the same [`rgi::Features`] it declares in its `ServerInfo`): a server
//! that does not provide a feature declares the skip, by capability
//! (`Needs::EarlyHints`, `Needs::AsyncEarlyHints`, ...), and the cases
//! print `SKIPPED (declared: ...)`. What every server owes whether or not
//! it provides a feature (a head announcing trailers framed for them,
//! trailers and hints dropped where they cannot go, nothing sent after the
//! final head, each event written at once, a declaration that matches the
//! claims) needs nothing and runs everywhere.
//!
//! | Module | Area | Needs |
//! |---|---|---|
//! | `declared` | the declaration against the claims | nothing |
//! | `trailers` | request and response trailers | the feature, or nothing for what every server owes |
//! | `hints` | `103 Early Hints` | early hints, or nothing for what every server owes |
//! | `life` | start-up and shut-down | lifespan |
//! | `sse` | event streams | nothing (asynchronous applications for the async case) |
//!
//! [`Claims::features`]: crate::suite::Claims::features

/// Defines the `const fn` that builds one feature case, named after the
/// function.
macro_rules! feature_case {
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
}

mod declared;
mod hints;
mod life;
mod sse;
mod support;
mod trailers;

#[allow(
    clippy::wildcard_imports,
    reason = "the case list macro names every case function"
)]
use self::{declared::*, hints::*, life::*, sse::*, trailers::*};
use crate::suite::Case;

/// The cases of the optional features, in the suite's order.
pub(crate) const FEATURE_CASES: &[Case] = crate::__rgi_feature_cases!(table);

/// The single list of feature case names, expanded in the modes of
/// [`__rgi_sync_case_list!`](crate::__rgi_sync_case_list): `(table)`,
/// `(names)` and `(tests path::to::factory)`.
#[doc(hidden)]
#[macro_export]
macro_rules! __rgi_feature_cases {
    ($($mode:tt)*) => {
        $crate::__rgi_sync_case_list! {
            ($($mode)*)
            // The declaration.
            rgi_feat_1_declared_features_match_the_claims
            // Trailers.
            rgi_trailer_1_request_trailers_after_the_body
            rgi_trailer_1_async_request_trailers_after_the_body
            rgi_trailer_7_trailers_reach_a_client_that_accepts_them
            rgi_trailer_7_async_trailers_reach_a_client_that_accepts_them
            rgi_trailer_7_undeliverable_trailers_are_dropped_silently
            rgi_trailer_6_announced_trailers_keep_a_length_off_the_head
            rgi_trailer_9_file_body_announcing_trailers_goes_chunked
            // 103 Early Hints.
            rgi_early_3_hints_go_out_before_the_final_head
            rgi_early_3_async_hints_go_out_before_the_final_head
            rgi_early_3_no_hints_to_http10
            rgi_early_3_no_hints_after_the_final_head
            // Lifespan.
            rgi_life_1_startup_before_the_first_request
            rgi_life_2_failed_startup_stops_the_server
            rgi_life_3_shutdown_once_after_the_last_response
            rgia_life_1_async_startup_and_shutdown
            // Server-sent events.
            rgi_sse_3_each_event_sent_at_once
            rgi_sse_3_async_each_event_sent_at_once
        }
    };
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::FEATURE_CASES;
    use crate::catalogue::{self, Party};
    use crate::suite::Needs;

    #[test]
    fn the_macro_names_every_case_in_order() {
        const NAMES: &[&str] = crate::__rgi_feature_cases!(names);
        let cases: Vec<&str> = FEATURE_CASES.iter().map(crate::suite::Case::name).collect();
        assert_eq!(NAMES, cases);
    }

    #[test]
    fn names_start_with_the_main_clause_which_binds_the_server() {
        let mut seen = HashSet::new();
        for case in FEATURE_CASES {
            assert!(seen.insert(case.name()), "{} twice", case.name());
            let main = case.check().clauses()[0];
            let prefix = format!("{}_", main.to_lowercase().replace('-', "_"));
            assert!(case.name().starts_with(&prefix), "{}", case.name());
            let clause = catalogue::clause(main).expect("a clause of the spec");
            assert!(
                matches!(clause.party, Party::Server | Party::All),
                "{}: {main} binds the {}",
                case.name(),
                clause.party
            );
        }
    }

    #[test]
    fn asynchronous_cases_need_asynchronous_applications() {
        for case in FEATURE_CASES {
            let asynchronous = case.name().contains("async");
            let needs_async = matches!(
                case.needs(),
                Needs::Asynchronous
                    | Needs::AsyncRequestTrailers
                    | Needs::AsyncResponseTrailers
                    | Needs::AsyncEarlyHints
                    | Needs::AsyncLifespan
            );
            assert_eq!(asynchronous, needs_async, "{}", case.name());
        }
    }
}
