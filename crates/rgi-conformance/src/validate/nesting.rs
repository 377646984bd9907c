//! Validators inside validators: how a middleware is judged from the two
//! boundaries it sits between.
//!
//! A middleware author tests it the way the module documentation of
//! [`validate`](super) suggests: one validator outside (between the
//! server and the middleware) and one inside (between the middleware and
//! the application it wraps). Each validator alone sees one boundary, and
//! a fault it sees there may be the middleware's or the party beyond it:
//! a Content-Length the outer validator finds broken may come from the
//! application or from a middleware that changed the body and kept the
//! field. Seen together, the two boundaries tell them apart.
//!
//! The validators meet on the thread that runs them. Every step a
//! validator wraps (`call`, a pull or poll, a switch continuation) pushes
//! a [`Frame`] on a thread-local stack for as long as it runs; a validator
//! whose step begins while another validator's frame is on top runs
//! *inside* that step, so the middleware between them is the code that
//! called it. The inner validator then tells the outer frame what its
//! steps returned (a chunk, `Pending`, a failure, whether the response is
//! started), and the two link their requests once, so that the outer one
//! can compare its length information with the inner one's and the inner
//! one can tell, when a body of its is never dropped, whether the
//! middleware around it lost it.
//!
//! What the link judges, all of it about the code between the two
//! validators (the middleware), never about either end:
//! - an inner pull during the middleware's own `call` (`RGI-MW-6`);
//! - a second inner chunk (or asynchronous step) fetched within one step
//!   of the middleware (`RGI-MW-5`, `RGIA-COMP-10`);
//! - an inner switch continuation run inside the middleware's poll instead
//!   of passed on (`RGIA-COMP-11`);
//! - an inner `Pending` turned into an empty chunk (`RGIA-COMP-9`);
//! - an inner failure after the head followed by a normal step
//!   (`RGI-MW-9`);
//! - a head the middleware starts or replaces itself, outside any inner
//!   step, over an inner response that started and did not fail
//!   (`RGI-MW-3`);
//! - a `write` of the middleware's own whose bytes are the chunk the inner
//!   body just returned (`RGI-MW-4`);
//! - a length fault the outer validator sees and the inner one does not,
//!   where the middleware changed the declared length or forwarded the
//!   inner size hint over bytes it changed (`RGI-MW-8`, in `state`);
//! - an inner body never dropped while the middleware's own body was
//!   (`RGI-MW-7`, `RGIA-COMP-12`, in `state`).
//!
//! Only pairs of the same interface are compared for the step counts: an
//! adapter between an asynchronous server and a synchronous application
//! (the threaded adapter) drives its inner body by rules of its own.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use rgi::BoxError;
use rgi_async::Step;

use super::rules::{self, Rule};

/// Which interface a piece of the validator serves; it picks the clause
/// of checks that exist in both documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// A synchronous body (an application's, or a switch continuation's).
    Sync,
    /// An asynchronous body.
    Async,
}

/// Which kind of step a validator wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `call`: the server lends a fresh handle.
    Call,
    /// A pull or poll: the handle must still know the earlier steps, and
    /// the last chunk must have been sent.
    Pull,
    /// A switch continuation, whose handle the switch checks judge.
    Continuation,
}

/// One validator request, as the stack sees it: this module keeps only
/// opaque handles, so that it depends on nothing of the request's own
/// module (`state`, which calls into this one).
pub(crate) trait Boundary: Any + Send + Sync {
    /// Reports a violation of `rule` against this request.
    fn report_rule(&self, rule: &Rule, message: String, value: String);
    /// Links this request, once, to `outer`, the request it runs nested in.
    fn link_to_outer(&self, outer: &Arc<dyn Boundary>);
}

/// Whether two handles are the same request (by address: the vtable part
/// of a `dyn` pointer may differ between codegen units).
fn same(a: &Arc<dyn Boundary>, b: &dyn Boundary) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), std::ptr::from_ref(b))
}

/// What one step of an application returned, as far as the nesting
/// checks care.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// `Poll::Pending`.
    Pending,
    /// A chunk (possibly empty).
    Chunk(Bytes),
    /// The normal end of the body.
    End,
    /// An error.
    Failed,
    /// Anything else: a body returned by `call` or a continuation, a
    /// switch, a step of a later version.
    Other,
}

/// The results of the steps the validator wraps.
pub(crate) trait StepOutcome {
    /// What the step returned.
    fn outcome(&self) -> Outcome;
}

impl<T> StepOutcome for Result<T, BoxError> {
    fn outcome(&self) -> Outcome {
        match self {
            Ok(_) => Outcome::Other,
            Err(_) => Outcome::Failed,
        }
    }
}

impl StepOutcome for Option<Result<Bytes, BoxError>> {
    fn outcome(&self) -> Outcome {
        match self {
            None => Outcome::End,
            Some(Err(_)) => Outcome::Failed,
            Some(Ok(chunk)) => Outcome::Chunk(chunk.clone()),
        }
    }
}

impl StepOutcome for Poll<Option<Result<Step, BoxError>>> {
    fn outcome(&self) -> Outcome {
        match self {
            Poll::Pending => Outcome::Pending,
            Poll::Ready(None) => Outcome::End,
            Poll::Ready(Some(Err(_))) => Outcome::Failed,
            Poll::Ready(Some(Ok(Step::Chunk(chunk)))) => Outcome::Chunk(chunk.clone()),
            Poll::Ready(Some(Ok(_))) => Outcome::Other,
        }
    }
}

/// One step of a validator in progress on this thread, with what the
/// validators nested inside it reported during the step.
struct Frame {
    request: Arc<dyn Boundary>,
    flavor: Flavor,
    scope: Scope,
    /// A nested validator ran a step inside this one.
    nested: bool,
    /// Chunks (or asynchronous chunk steps) the nested body returned
    /// during this step.
    inner_chunks: u32,
    /// The last non-empty chunk the nested body returned during this step.
    inner_chunk: Option<Bytes>,
    /// A nested poll returned `Pending` during this step.
    inner_pending: bool,
    /// The last nested step failed.
    inner_failed: bool,
    /// A nested step failed after the head was sent.
    inner_failed_after_head: bool,
    /// The nested validator saw the response started.
    inner_started: bool,
}

thread_local! {
    static STACK: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
}

/// A violation found while the stack was borrowed, reported after.
type Found = (Arc<dyn Boundary>, Rule, String, String);

fn report(found: Vec<Found>) {
    for (request, rule, message, value) in found {
        request.report_rule(&rule, message, value);
    }
}

/// The step of `request` on this thread, from [`enter`] until
/// [`Entered::exit`] (or its drop, when the step panicked).
pub(crate) struct Entered {
    request: Arc<dyn Boundary>,
    exited: bool,
}

/// Pushes the frame of a step of `request` and judges, against the frame
/// it nests in (if any), how the middleware in between called it.
pub(crate) fn enter(request: &Arc<dyn Boundary>, flavor: Flavor, scope: Scope) -> Entered {
    let mut found: Vec<Found> = Vec::new();
    let mut link = None;
    STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        if let Some(outer) = stack
            .last_mut()
            .filter(|outer| !same(&outer.request, &**request))
        {
            outer.nested = true;
            link = Some(Arc::clone(&outer.request));
            judge_entry(outer, flavor, scope, &mut found);
        }
        stack.push(Frame {
            request: Arc::clone(request),
            flavor,
            scope,
            nested: false,
            inner_chunks: 0,
            inner_chunk: None,
            inner_pending: false,
            inner_failed: false,
            inner_failed_after_head: false,
            inner_started: false,
        });
    });
    // The guard exists before anything is reported: a report that panics
    // (the panic policy) must not leave the frame on the stack.
    let entered = Entered {
        request: Arc::clone(request),
        exited: false,
    };
    if let Some(outer) = link {
        request.link_to_outer(&outer);
    }
    report(found);
    entered
}

/// The checks made when a nested step begins inside `outer`.
fn judge_entry(outer: &Frame, flavor: Flavor, scope: Scope, found: &mut Vec<Found>) {
    let same = outer.flavor == flavor;
    let rule = match (scope, outer.scope) {
        (Scope::Pull, Scope::Call) if same && flavor == Flavor::Sync => Some((
            rules::MW_PULLS_IN_CALL,
            "the middleware pulled the inner body inside its own call",
        )),
        (Scope::Pull, Scope::Pull) if same && outer.inner_chunks > 0 => Some(match flavor {
            Flavor::Sync => (
                rules::MW_SEVERAL_PER_STEP,
                "the middleware pulled the inner body again within one pull of its own, after it returned a chunk",
            ),
            Flavor::Async => (
                rules::ASYNC_MW_SEVERAL_PER_STEP,
                "the middleware polled the inner body again within one poll of its own, after it returned a step",
            ),
        }),
        (Scope::Continuation, Scope::Call | Scope::Pull) if outer.flavor == Flavor::Async => {
            Some((
                rules::ASYNC_MW_RUNS_CONTINUATION,
                "the middleware ran the inner switch continuation inside its own poll instead of passing the switch on",
            ))
        }
        _ => None,
    };
    if let Some((rule, message)) = rule {
        found.push((
            Arc::clone(&outer.request),
            rule,
            message.to_owned(),
            format!("{} inner step(s) already this step", outer.inner_chunks),
        ));
    }
}

impl Entered {
    /// Pops the frame and judges the step's `outcome`; `started` and
    /// `head_sent` are what the step's handle said at its end.
    pub(crate) fn exit(mut self, outcome: &Outcome, started: bool, head_sent: bool) {
        self.exited = true;
        let mut found: Vec<Found> = Vec::new();
        STACK.with(|stack| {
            let mut stack = stack.borrow_mut();
            let Some(own) = pop_own(&mut stack, &self.request) else {
                return;
            };
            judge_exit(&own, outcome, &mut found);
            if let Some(outer) = stack
                .last_mut()
                .filter(|outer| !same(&outer.request, &*self.request))
            {
                match outcome {
                    Outcome::Chunk(chunk) => {
                        outer.inner_chunks += 1;
                        if !chunk.is_empty() {
                            outer.inner_chunk = Some(chunk.clone());
                        }
                        outer.inner_failed = false;
                    }
                    Outcome::Pending => outer.inner_pending = true,
                    Outcome::Failed => {
                        outer.inner_failed = true;
                        outer.inner_failed_after_head |= head_sent;
                    }
                    Outcome::End | Outcome::Other => outer.inner_failed = false,
                }
                outer.inner_started = started;
            }
        });
        report(found);
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        if !self.exited {
            // The step panicked: only the frame goes.
            STACK.with(|stack| {
                pop_own(&mut stack.borrow_mut(), &self.request);
            });
        }
    }
}

/// Removes the top frame if it is `request`'s.
fn pop_own(stack: &mut Vec<Frame>, request: &Arc<dyn Boundary>) -> Option<Frame> {
    if stack
        .last()
        .is_some_and(|top| same(&top.request, &**request))
    {
        stack.pop()
    } else {
        None
    }
}

/// The checks made when a step with nested steps in it returns.
fn judge_exit(own: &Frame, outcome: &Outcome, found: &mut Vec<Found>) {
    if !own.nested {
        return;
    }
    let carried_on = matches!(outcome, Outcome::End | Outcome::Chunk(_));
    if own.inner_failed_after_head && carried_on {
        found.push((
            Arc::clone(&own.request),
            rules::MW_SWALLOWS_FAILURE,
            "the inner body failed after the head was sent, and the middleware carried on instead of failing".to_owned(),
            format!("{outcome:?}"),
        ));
    }
    let empty = matches!(outcome, Outcome::Chunk(chunk) if chunk.is_empty());
    if own.flavor == Flavor::Async && own.scope == Scope::Pull && own.inner_pending && empty {
        found.push((
            Arc::clone(&own.request),
            rules::ASYNC_MW_PENDING_AS_STEP,
            "the inner body returned Pending, and the middleware turned it into an empty chunk"
                .to_owned(),
            "Step::Chunk(b\"\")".to_owned(),
        ));
    }
}

/// Whether a step of `request` (of `flavor`) begins inside a pull or
/// poll of another validator of the same interface: the code between
/// them is a middleware body.
pub(crate) fn inside_pull_of_another(request: &dyn Boundary, flavor: Flavor) -> bool {
    STACK.with(|stack| {
        stack.borrow().last().is_some_and(|outer| {
            !same(&outer.request, request) && outer.flavor == flavor && outer.scope == Scope::Pull
        })
    })
}

/// What the middleware does with the handle itself, outside any inner
/// step: a head or a write, seen by `request`'s hook.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action<'a> {
    /// `start` or `replace`.
    Head,
    /// `write` with these bytes.
    Write(&'a Bytes),
}

/// Judges a head or a write `request`'s hook sees while `request`'s own
/// step is on top of the stack (so no nested step sent it).
pub(crate) fn own_action(request: &dyn Boundary, action: Action<'_>) {
    let mut found: Vec<(Rule, &'static str, String)> = Vec::new();
    STACK.with(|stack| {
        let stack = stack.borrow();
        let Some(own) = stack
            .last()
            .filter(|top| same(&top.request, request))
        else {
            return;
        };
        if !own.nested {
            return;
        }
        match action {
            Action::Head if own.inner_started && !own.inner_failed => found.push((
                rules::MW_HEAD_NOT_INTERCEPTED,
                "the middleware started or replaced the head itself after the inner application had started its response, instead of intercepting it",
                "start or replace outside the inner steps".to_owned(),
            )),
            Action::Write(data)
                if !data.is_empty() && own.inner_chunk.as_ref() == Some(data) =>
            {
                found.push((
                    rules::MW_WRITES_INNER_CHUNK,
                    "the middleware sent a chunk of the inner body with the outer write instead of returning it",
                    format!("{} bytes", data.len()),
                ));
            }
            _ => {}
        }
    });
    for (rule, message, value) in found {
        request.report_rule(&rule, message.to_owned(), value);
    }
}
