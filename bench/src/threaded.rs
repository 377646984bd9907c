//! The anchor of the rgi-simple-server benchmark: a plain std
//! thread-per-connection HTTP/1.1 server answering exactly the bytes
//! rgi-simple-server answers the sync hello application with.
//!
//! It is what a careful programmer writes without a poller: one thread per
//! accepted connection (a small stack, since it holds one buffer), a
//! blocking read into one growing buffer, `httparse` for the head, and one
//! write for all the answers a read completed (so a pipelined burst costs
//! one write, as it would in any server that batches). It serves `GET` and
//! `HEAD` requests without bodies; anything else (a body, another method,
//! an unparsable head, HTTP/1.0) gets `400` or `501` and the connection
//! closes, since the benchmark never sends them.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::apps::{HELLO_BODY, HELLO_PATH};

/// The `server` field, the same value rgi-simple-server sends, so that
/// both answers are byte for byte the same size and content (the `date`
/// aside, which changes every second on both).
pub const SERVER_FIELD: &str = concat!("rgi-simple-server/", env!("CARGO_PKG_VERSION"));

/// Each connection thread's stack: the thread holds a read buffer on the
/// heap and a few frames, so 64 KiB is ample, and 10,000 connections do
/// not reserve 20 GiB of address space as std's 2 MiB default would.
pub const STACK_SIZE: usize = 64 * 1024;

/// The most header fields the anchor parses in a request head.
const MAX_FIELDS: usize = 32;
/// The largest head the anchor buffers before refusing it.
const MAX_HEAD: usize = 64 * 1024;
/// How much one read asks for.
const READ_SIZE: usize = 4 * 1024;

/// Accepts connections on `listener` forever, each served by its own
/// thread.
///
/// # Errors
///
/// Accepting failed for a reason other than an interrupted call or the
/// peer aborting before the accept, or a thread could not be started.
pub fn serve(listener: &TcpListener) -> io::Result<()> {
    loop {
        let (stream, _) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                ) =>
            {
                continue;
            }
            Err(error) => return Err(error),
        };
        std::thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(move || {
                // A connection's failure ends that connection only.
                let _ = connection(stream);
            })?;
    }
}

/// Binds `127.0.0.1:0` and serves it on a background thread; returns the
/// address (for tests and the benchmark's child).
///
/// # Errors
///
/// Binding failed.
pub fn spawn_local() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("threaded-accept".to_owned())
        .spawn(move || {
            if let Err(error) = serve(&listener) {
                eprintln!("threaded anchor: accept loop ended: {error}");
            }
        })?;
    Ok(addr)
}

/// What one parsed request asks for.
enum Request {
    /// A complete bodiless request of `len` bytes; answer it.
    Answer {
        len: usize,
        head_only: bool,
        found: bool,
        close: bool,
    },
    /// More bytes are needed.
    Partial,
    /// Not a request the anchor serves; answer `status` and close.
    Refuse(&'static str),
}

fn parse(bytes: &[u8]) -> Request {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut request = httparse::Request::new(&mut fields);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if bytes.len() <= MAX_HEAD => return Request::Partial,
        Ok(httparse::Status::Partial) => {
            return Request::Refuse("431 Request Header Fields Too Large");
        }
        Err(_) => return Request::Refuse("400 Bad Request"),
    };
    if request.version != Some(1) {
        return Request::Refuse("505 HTTP Version Not Supported");
    }
    let head_only = match request.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Request::Refuse("501 Not Implemented"),
    };
    let mut host = false;
    let mut close = false;
    for field in request.headers.iter() {
        if field.name.eq_ignore_ascii_case("host") {
            if host {
                return Request::Refuse("400 Bad Request");
            }
            host = true;
        } else if field.name.eq_ignore_ascii_case("content-length")
            || field.name.eq_ignore_ascii_case("transfer-encoding")
        {
            // A body would have to be read or drained; the benchmark sends
            // none, so the anchor does not pretend to handle one.
            if field.name.eq_ignore_ascii_case("transfer-encoding") || field.value != b"0" {
                return Request::Refuse("400 Bad Request");
            }
        } else if field.name.eq_ignore_ascii_case("connection") {
            close = field
                .value
                .split(|&byte| byte == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    if !host {
        return Request::Refuse("400 Bad Request");
    }
    let path = request.path.unwrap_or("");
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    Request::Answer {
        len,
        head_only,
        found: path == HELLO_PATH,
        close,
    }
}

/// Serves one connection until the peer closes it or breaks the protocol.
fn connection(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::new();
    let mut start = 0;
    let mut out: Vec<u8> = Vec::new();
    loop {
        // Compact, then read once.
        if start > 0 {
            buf.drain(..start);
            start = 0;
        }
        let old = buf.len();
        buf.resize(old + READ_SIZE, 0);
        let read = match stream.read(&mut buf[old..]) {
            Ok(read) => read,
            Err(error) if error.kind() == ErrorKind::Interrupted => {
                buf.truncate(old);
                continue;
            }
            Err(error) => return Err(error),
        };
        buf.truncate(old + read);
        if read == 0 {
            // The peer's end of stream; every complete request was
            // answered after the read that brought it.
            return Ok(());
        }
        let mut close = false;
        // Every complete request in the buffer, answered in one write.
        loop {
            match parse(&buf[start..]) {
                Request::Partial => break,
                Request::Refuse(status) => {
                    refuse(&mut out, status);
                    close = true;
                    break;
                }
                Request::Answer {
                    len,
                    head_only,
                    found,
                    close: asked,
                } => {
                    start += len;
                    answer(&mut out, head_only, found, asked);
                    if asked {
                        close = true;
                        break;
                    }
                }
            }
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
            out.clear();
        }
        if close {
            return Ok(());
        }
    }
}

fn answer(out: &mut Vec<u8>, head_only: bool, found: bool, close: bool) {
    if found {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 404 Not Found\r\n");
    }
    let body: &[u8] = if found { HELLO_BODY } else { b"" };
    let _ = write!(out, "content-length: {}\r\ndate: ", body.len());
    write_date(out, SystemTime::now());
    out.extend_from_slice(b"\r\nserver: ");
    out.extend_from_slice(SERVER_FIELD.as_bytes());
    if close {
        out.extend_from_slice(b"\r\nconnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
}

fn refuse(out: &mut Vec<u8>, status: &str) {
    let _ = write!(out, "HTTP/1.1 {status}\r\ncontent-length: 0\r\ndate: ");
    write_date(out, SystemTime::now());
    out.extend_from_slice(b"\r\nserver: ");
    out.extend_from_slice(SERVER_FIELD.as_bytes());
    out.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
}

/// Appends the IMF-fixdate of `now` (RFC 9110, section 5.6.7).
pub fn write_date(out: &mut Vec<u8>, now: SystemTime) {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    // Days to a civil date (the proleptic Gregorian calendar), shifted so
    // that years start in March and the leap day ends them.
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let of_era = shifted % 146_097;
    let year_of_era = (of_era - of_era / 1_460 + of_era / 36_524 - of_era / 146_096) / 365;
    let of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * of_year + 2) / 153;
    let day = of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    let weekday = WEEKDAYS
        .get(usize::try_from(days % 7).unwrap_or(0))
        .unwrap_or(&"Thu");
    let month_name = MONTHS
        .get(usize::try_from(month.saturating_sub(1)).unwrap_or(0))
        .unwrap_or(&"Jan");
    let _ = write!(
        out,
        "{weekday}, {day:02} {month_name} {year:04} {:02}:{:02}:{:02} GMT",
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_dates() {
        let mut out = Vec::new();
        write_date(&mut out, UNIX_EPOCH + Duration::from_secs(784_111_777));
        assert_eq!(out, b"Sun, 06 Nov 1994 08:49:37 GMT");
        out.clear();
        write_date(&mut out, UNIX_EPOCH + Duration::from_secs(951_782_400));
        assert_eq!(out, b"Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn parses_pipelined_requests_one_at_a_time() {
        let two = b"GET /hello HTTP/1.1\r\nhost: a\r\n\r\nGET /x HTTP/1.1\r\nhost: a\r\n\r\n";
        let Request::Answer { len, found, .. } = parse(two) else {
            panic!("the first request is complete");
        };
        assert!(found);
        assert!(matches!(
            parse(&two[len..]),
            Request::Answer { found: false, .. }
        ));
        assert!(matches!(parse(&two[..10]), Request::Partial));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nhost: a\r\n\r\n"),
            Request::Refuse(_)
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n"),
            Request::Refuse(_)
        ));
    }
}
