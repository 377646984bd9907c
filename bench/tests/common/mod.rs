//! What the benchmark's tests share: reading one HTTP/1.1 answer off a
//! keep-alive connection.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

/// One response as read off the wire: the head's lines without `Date`,
/// and the body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) head: Vec<String>,
    pub(crate) body: Vec<u8>,
}

pub(crate) fn read_answer(reader: &mut BufReader<TcpStream>, head_request: bool) -> Answer {
    let mut head = Vec::new();
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.ends_with("\r\n"), "truncated head line {line:?}");
        let line = line.trim_end_matches("\r\n").to_owned();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        assert!(
            !lower.starts_with("transfer-encoding:"),
            "hello answers are framed by length: {line}"
        );
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = Some(value.trim().parse::<usize>().unwrap());
        }
        if !lower.starts_with("date:") {
            head.push(line);
        }
    }
    let mut body = vec![0; if head_request { 0 } else { length.unwrap() }];
    reader.read_exact(&mut body).unwrap();
    Answer { head, body }
}
