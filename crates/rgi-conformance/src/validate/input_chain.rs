//! Validators in a chain: a validator inside a middleware learns what the
//! middleware changed by comparing the environ with what the validator
//! outside it handed on.
//!
//! Every validator leaves a private mark in the extensions of the environ
//! it hands to its application. A validator that is called while another
//! validator's application runs on the same thread is inside a middleware;
//! the mark tells it what the outer validator saw. No middleware can know
//! the mark's type, so one that removes it removed an extension value it
//! does not understand (`RGI-MW-11`), and a disagreement between the
//! content-length field and the input that the outer validator did not see
//! is the middleware's (`RGI-INPUT-16`).

use std::sync::{Arc, Weak};

use rgi::Environ;

use super::input_watch::inside_another_validator;
use super::rules;
use super::state::Request;

/// The mark a validator leaves in the environ it hands on.
#[derive(Debug, Clone)]
struct Passed {
    /// The content-length field agreed with the input's declared length
    /// when the outer validator received the environ.
    length_agreed: bool,
    /// The outer validator's request, to compare what its input delivered
    /// with what the middleware's replacement delivers.
    request: Weak<Request>,
}

/// Whether the environ came through another validator whose environ had a
/// content-length field agreeing with its input: a disagreement now is
/// the doing of a middleware between the two.
pub(crate) fn length_agreed_outside(environ: &Environ) -> bool {
    environ
        .extensions()
        .get::<Passed>()
        .is_some_and(|passed| passed.length_agreed)
}

/// Checks what a middleware between an outer validator and this one did to
/// the extensions, then leaves this validator's own mark. Returns the outer
/// validator's request when the environ came through one.
pub(crate) fn on_call(
    environ: &mut Environ,
    request: &Arc<Request>,
    length_agreed: bool,
) -> Option<Weak<Request>> {
    let outer = environ
        .extensions()
        .get::<Passed>()
        .map(|passed| Weak::clone(&passed.request));
    if outer.is_none() && inside_another_validator() {
        request.violate(
            &rules::MW_EXTENSION_REMOVED,
            "a middleware removed an extension value it cannot understand (the outer validator's private mark) from the environ it handed inward",
            format!(
                "{} extension values left",
                environ.extensions().len()
            ),
        );
    }
    environ.extensions_mut().insert(Passed {
        length_agreed,
        request: Arc::downgrade(request),
    });
    outer
}
