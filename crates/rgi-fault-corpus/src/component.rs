//! What a row of the corpus is: the component, its kind and interface, and
//! what the corpus expects the kit to report. Below the component modules
//! that build rows and the harness that runs them.

use rgi_conformance::{Side, Violation};

/// Who the component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// An application, run behind a test client.
    Application,
    /// A middleware, run between a test client and a validated inner
    /// application.
    Middleware,
    /// A hand-written server loop driving a validated probe application.
    Server,
}

/// Which interface the component speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Interface {
    /// `rgi::Application` / `rgi::Body`.
    Sync,
    /// `rgi_async::AsyncApplication` / `rgi_async::AsyncBody`.
    Async,
}

/// What the corpus says about a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The component breaks `clause`, and `side` is to blame.
    Broken {
        /// The clause ID from the spec.
        clause: &'static str,
        /// The side the spec binds (a middleware is blamed as the side it
        /// plays towards the party it wrongs).
        side: Side,
    },
    /// The component is correct, however unusual: the kit must not report
    /// an error for it.
    Correct,
}

/// One row of the corpus.
#[derive(Debug, Clone, Copy)]
pub struct Component {
    /// A unique name.
    pub name: &'static str,
    /// Application, middleware or server.
    pub kind: Kind,
    /// Synchronous or asynchronous.
    pub interface: Interface,
    /// The clause and side it breaks, or that it is correct.
    pub expect: Expect,
    /// Runs the component through the kit and returns every violation the
    /// kit reported, or why the run itself could not happen.
    pub run: fn() -> Result<Vec<Violation>, String>,
}
