//! What both benchmarks do with their child processes: start one, under
//! callgrind or natively, and read callgrind's instruction total.

use std::path::Path;
use std::process::Command;

/// A command running `exe args...`, under `valgrind --tool=callgrind`
/// writing its totals to `callgrind_out` when that is given.
#[must_use]
pub fn command(exe: &Path, callgrind_out: Option<&Path>, args: &[&str]) -> Command {
    match callgrind_out {
        Some(out) => {
            let mut command = Command::new("valgrind");
            command
                .arg("--tool=callgrind")
                .arg("--quiet")
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(exe)
                .args(args);
            command
        }
        None => {
            let mut command = Command::new(exe);
            command.args(args);
            command
        }
    }
}

/// The total instruction count in the text of a callgrind output file
/// (its `summary:` line, or `totals:` in older formats); `None` if there
/// is neither.
#[must_use]
pub fn parse_callgrind_total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| {
            line.strip_prefix("summary:")
                .or_else(|| line.strip_prefix("totals:"))
        })
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
}

/// The total instruction count callgrind wrote to `path`.
///
/// # Errors
///
/// The file cannot be read (`InvalidData` when it holds no total).
pub fn callgrind_total(path: &Path) -> std::io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    parse_callgrind_total(&text).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no instruction total in {}", path.display()),
        )
    })
}

/// The address in a server's `listening ADDR` line, the first line every
/// benchmark server writes; `None` for any other line.
#[must_use]
pub fn parse_listening(line: &str) -> Option<std::net::SocketAddr> {
    line.strip_prefix("listening ")?.trim().parse().ok()
}
