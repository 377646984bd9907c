//! The rgi-middleware overhead report (`bench/middleware.sh`): every stack
//! of [`crate::mw`] run as its own process twice (under callgrind unless
//! told not to), the two runs subtracted, and one table printed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use crate::mw::{Flavor, Stack};

/// The instruction target of issue 15, item 1: `Wrapped` at most this
/// many times the hand-written middleware's instructions per request.
pub const TARGET_RATIO: f64 = 1.05;

/// How much to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Requests of the larger and the smaller run.
    pub requests: (u64, u64),
    /// Whether to run under callgrind at all.
    pub valgrind: bool,
}

impl Plan {
    /// The full measurement.
    pub const FULL: Plan = Plan {
        requests: (20_000, 10_000),
        valgrind: true,
    };

    /// The same with small counts (CI); the counts are exact either way,
    /// start-up cancelling in the subtraction.
    pub const QUICK: Plan = Plan {
        requests: (2_000, 1_000),
        valgrind: true,
    };
}

/// Why the report could not be produced (a missed target is not one).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MwReportError {
    /// A child could not be started, or callgrind's file read.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
    /// A child failed or printed no count.
    #[error("{0}")]
    Child(String),
}

/// Per-request figures of one stack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// Instructions per request, when measured.
    pub instructions: Option<f64>,
    /// Allocations per request.
    pub allocations: f64,
}

/// Runs the children and prints the table.
#[derive(Debug)]
pub struct MwReport {
    exe: PathBuf,
    work: PathBuf,
    plan: Plan,
}

impl MwReport {
    /// A report that spawns `exe` (this binary) and keeps callgrind's
    /// files in `work`.
    ///
    /// # Errors
    ///
    /// `work` cannot be created.
    pub fn new(exe: PathBuf, work: PathBuf, plan: Plan) -> Result<Self, MwReportError> {
        std::fs::create_dir_all(&work).map_err(|source| MwReportError::Io {
            what: format!("creating {}", work.display()),
            source,
        })?;
        Ok(MwReport { exe, work, plan })
    }

    /// One child: `n` requests; its instructions (under callgrind) and its
    /// whole-process allocations.
    fn child(
        &self,
        flavor: Flavor,
        stack: Stack,
        n: u64,
    ) -> Result<(Option<u64>, u64), MwReportError> {
        let out = self.work.join(format!(
            "callgrind.mw.{}.{}.{n}",
            flavor.name(),
            stack.name()
        ));
        let what = format!("mw {} {} {n}", flavor.name(), stack.name());
        let output = crate::child::command(
            &self.exe,
            self.plan.valgrind.then_some(out.as_path()),
            &["mw", flavor.name(), stack.name(), &n.to_string()],
        )
        .stdin(Stdio::null())
        .output()
        .map_err(|source| MwReportError::Io {
            what: what.clone(),
            source,
        })?;
        if !output.status.success() {
            return Err(MwReportError::Child(format!(
                "{what} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let allocations = parse_allocations(&text)
            .ok_or_else(|| MwReportError::Child(format!("{what} printed no count: {text}")))?;
        let instructions = if self.plan.valgrind {
            Some(total(&out)?)
        } else {
            None
        };
        Ok((instructions, allocations))
    }

    /// One stack's figures: the two runs subtracted.
    ///
    /// # Errors
    ///
    /// A child failed.
    pub fn measure(&self, flavor: Flavor, stack: Stack) -> Result<Figures, MwReportError> {
        let (large, small) = self.plan.requests;
        let span = (large - small) as f64;
        let (a, a_allocations) = self.child(flavor, stack, large)?;
        let (b, b_allocations) = self.child(flavor, stack, small)?;
        Ok(Figures {
            instructions: a.zip(b).map(|(a, b)| (a as f64 - b as f64) / span),
            allocations: (a_allocations as f64 - b_allocations as f64) / span,
        })
    }

    /// Measures every stack of both flavors and returns the table.
    ///
    /// # Errors
    ///
    /// A child failed; a missed target is not an error.
    pub fn run(&self) -> Result<String, MwReportError> {
        let started = Instant::now();
        let mut results = Vec::new();
        for flavor in Flavor::ALL {
            for stack in Stack::ALL {
                results.push((flavor, stack, self.measure(flavor, stack)?));
            }
        }
        let mut text = String::new();
        let (large, small) = self.plan.requests;
        let _ = writeln!(
            text,
            "rgi-middleware overhead (issue 15, item 1): in process, no sockets; \
             instructions: callgrind, ({large} - {small}) requests subtracted; \
             allocations: counting allocator, the same runs subtracted"
        );
        let _ = writeln!(text);
        let _ = writeln!(
            text,
            "{:<6} {:<16} {:>14} {:>12} {:>12}",
            "stack", "app", "instr/req", "allocs/req", "vs bare"
        );
        for &(flavor, stack, figures) in &results {
            let bare = find(&results, flavor, Stack::Bare);
            let versus = match stack {
                Stack::Bare => String::from("-"),
                _ => difference(figures, bare),
            };
            let _ = writeln!(
                text,
                "{:<6} {:<16} {:>14} {:>12.2} {:>12}",
                flavor.name(),
                stack.name(),
                instructions(figures.instructions),
                figures.allocations,
                versus
            );
        }
        let _ = writeln!(text);
        let _ = writeln!(
            text,
            "{:<6} {:<7} {:>12} {:>12} {:>9} {:>8} {:>10} {:>9}",
            "stack", "case", "hand instr", "Wrapped", "ratio", "verdict", "+allocs", "verdict"
        );
        let mut missed = 0;
        let mut met = 0;
        for flavor in Flavor::ALL {
            for (case, hand, wrapped) in [
                ("header", Stack::HeaderHand, Stack::HeaderWrapped),
                ("count", Stack::CountHand, Stack::CountWrapped),
            ] {
                let hand = find(&results, flavor, hand);
                let wrapped = find(&results, flavor, wrapped);
                let ratio = hand
                    .instructions
                    .zip(wrapped.instructions)
                    .map(|(hand, wrapped)| wrapped / hand);
                let ratio_verdict = match ratio {
                    None => "-",
                    Some(ratio) if ratio <= TARGET_RATIO => "met",
                    Some(_) => "MISSED",
                };
                let extra = wrapped.allocations - hand.allocations;
                // Allocation counts are whole numbers per request: anything
                // from a stray start-up difference is far below a half.
                let extra_verdict = if extra < 0.5 { "met" } else { "MISSED" };
                for verdict in [ratio_verdict, extra_verdict] {
                    match verdict {
                        "met" => met += 1,
                        "MISSED" => missed += 1,
                        _ => {}
                    }
                }
                let _ = writeln!(
                    text,
                    "{:<6} {:<7} {:>12} {:>12} {:>9} {:>8} {:>10.2} {:>9}",
                    flavor.name(),
                    case,
                    instructions(hand.instructions),
                    instructions(wrapped.instructions),
                    ratio.map_or_else(|| String::from("-"), |ratio| format!("{ratio:.3}")),
                    ratio_verdict,
                    extra,
                    extra_verdict
                );
            }
        }
        let _ = writeln!(text);
        let _ = writeln!(
            text,
            "targets: Wrapped <= {TARGET_RATIO:.2}x the hand-written instructions per request, \
             and 0 allocations more; {met} met, {missed} missed; measured in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        Ok(text)
    }
}

fn find(results: &[(Flavor, Stack, Figures)], flavor: Flavor, stack: Stack) -> Figures {
    results
        .iter()
        .find(|(f, s, _)| *f == flavor && *s == stack)
        .map_or(
            Figures {
                instructions: None,
                allocations: f64::NAN,
            },
            |(_, _, figures)| *figures,
        )
}

fn instructions(value: Option<f64>) -> String {
    value.map_or_else(|| String::from("-"), |value| format!("{value:.0}"))
}

fn difference(figures: Figures, bare: Figures) -> String {
    match figures.instructions.zip(bare.instructions) {
        Some((mine, bare)) => format!("{:+.0}", mine - bare),
        None => String::from("-"),
    }
}

/// The count in a child's `mw allocations=N` line.
#[must_use]
pub fn parse_allocations(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("mw allocations="))
        .and_then(|value| value.trim().parse().ok())
}

fn total(path: &Path) -> Result<u64, MwReportError> {
    crate::child::callgrind_total(path).map_err(|source| MwReportError::Io {
        what: format!("reading {}", path.display()),
        source,
    })
}
