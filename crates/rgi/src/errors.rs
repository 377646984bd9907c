//! The error stream (`wsgi.errors`).

use std::fmt;
use std::io::{self, Write};

/// Where an application writes diagnostics: the server's log (`wsgi.errors`).
///
/// `Errors` implements [`Write`]; text or bytes may be written, and the
/// server deals with line endings. Writing never fails towards the
/// application: if the log itself fails, the failure is swallowed, because a
/// broken log must not turn into a failed request.
///
/// # Examples
///
/// ```
/// use std::io::Write;
///
/// let mut errors = rgi::Errors::discard();
/// writeln!(errors, "cache miss for {}", "/index.html")?;
/// errors.flush()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Errors {
    sink: Box<dyn Sink>,
}

/// A writer that can say what it is, for `Debug`. The standard sinks are
/// zero-sized, and boxing a zero-sized value allocates nothing, so the
/// default stream of every request is free (RGI-ENV-9) and `Errors` stays
/// two words.
trait Sink: Write + Send {
    fn kind(&self) -> &'static str;
}

struct StandardError;

impl Write for StandardError {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        io::stderr().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl Sink for StandardError {
    fn kind(&self) -> &'static str {
        "Stderr"
    }
}

impl Sink for io::Sink {
    fn kind(&self) -> &'static str {
        "Discard"
    }
}

struct Custom<W>(W);

impl<W: Write> Write for Custom<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send> Sink for Custom<W> {
    fn kind(&self) -> &'static str {
        "Custom"
    }
}

impl Errors {
    /// An error stream writing into `sink` (typically the server's log).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use std::sync::{Arc, Mutex};
    ///
    /// #[derive(Clone, Default)]
    /// struct SharedLog(Arc<Mutex<Vec<u8>>>);
    ///
    /// impl Write for SharedLog {
    ///     fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
    ///         self.0.lock().unwrap().extend_from_slice(buf);
    ///         Ok(buf.len())
    ///     }
    ///     fn flush(&mut self) -> std::io::Result<()> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let log = SharedLog::default();
    /// let mut errors = rgi::Errors::new(log.clone());
    /// errors.write_all(b"template not found\n")?;
    /// assert_eq!(*log.0.lock().unwrap(), b"template not found\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn new(sink: impl Write + Send + 'static) -> Self {
        Self {
            sink: Box::new(Custom(sink)),
        }
    }

    /// An error stream writing to the process's standard error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let mut errors = rgi::Errors::stderr();
    /// errors.write_all(b"starting up\n")?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn stderr() -> Self {
        Self {
            sink: Box::new(StandardError),
        }
    }

    /// An error stream that drops everything written to it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// let mut errors = rgi::Errors::discard();
    /// assert_eq!(errors.write(b"ignored")?, 7);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[must_use]
    pub fn discard() -> Self {
        Self {
            sink: Box::new(io::sink()),
        }
    }
}

impl Write for Errors {
    /// Writes all of `buf` to the sink and reports it written, even if the
    /// sink failed.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Writing the whole buffer keeps a message in one piece in the log;
        // a failure of the log is not the application's to handle.
        let _ = self.sink.write_all(buf);
        Ok(buf.len())
    }

    /// Flushes the sink; never fails.
    fn flush(&mut self) -> io::Result<()> {
        let _ = self.sink.flush();
        Ok(())
    }
}

impl fmt::Debug for Errors {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Errors")
            .field("sink", &format_args!("{}", self.sink.kind()))
            .finish()
    }
}
