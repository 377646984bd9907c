//! A body read from a file, which a server may send with `sendfile`
//! (spec/rgi.md, "The file body"; WSGI's `wsgi.file_wrapper`).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use bytes::{Bytes, BytesMut};

/// A body that is a range of a file.
///
/// Servers that can send files directly (`sendfile`) find it through
/// [`Body::file`](crate::Body::file), send from [`offset`](FileBody::offset) and report progress
/// with [`advance`](FileBody::advance); every other server reads it like any
/// body, chunk by chunk. Nothing is read or sent before the server has the
/// body back from the application (`[RGI-FILE-6]`).
///
/// # Examples
///
/// ```
/// use rgi::{Body, FileBody};
/// use std::io::Write;
///
/// let path = std::env::temp_dir().join("rgi-file-body-doc.txt");
/// std::fs::File::create(&path)?.write_all(b"0123456789")?;
///
/// let body = FileBody::range(std::fs::File::open(&path)?, 2, 5)?;
/// assert_eq!(body.offset(), 2);
/// assert_eq!(body.size_hint(), Some(5));
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FileBody {
    file: File,
    offset: u64,
    remaining: Option<u64>,
    cursor: u64,
    chunk_size: usize,
}

impl FileBody {
    /// Chunk size of the read fallback when none is set.
    pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;

    /// The file from its current position to its end.
    ///
    /// # Errors
    ///
    /// Any error reading the file's position or metadata.
    pub fn new(mut file: File) -> io::Result<Self> {
        let offset = file.stream_position()?;
        let metadata = file.metadata()?;
        // Only a regular file's length is a promise; a pipe or device ends
        // when it ends.
        let remaining = metadata
            .is_file()
            .then(|| metadata.len().saturating_sub(offset));
        Ok(FileBody {
            file,
            offset,
            remaining,
            cursor: offset,
            chunk_size: Self::DEFAULT_CHUNK_SIZE,
        })
    }

    /// `len` bytes of the file from `offset`.
    ///
    /// # Errors
    ///
    /// Any error seeking to `offset`.
    pub fn range(mut file: File, offset: u64, len: u64) -> io::Result<Self> {
        file.seek(SeekFrom::Start(offset))?;
        Ok(FileBody {
            file,
            offset,
            remaining: Some(len),
            cursor: offset,
            chunk_size: Self::DEFAULT_CHUNK_SIZE,
        })
    }

    /// This body with chunks of at most `chunk_size` bytes (at least one) in
    /// the read fallback.
    #[must_use]
    pub fn with_chunk_size(mut self, chunk_size: usize) -> Self {
        self.chunk_size = chunk_size.max(1);
        self
    }

    /// The file.
    #[must_use]
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Where the unsent part starts.
    #[must_use]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How many bytes are left to send, when the length is known.
    #[must_use]
    pub fn remaining(&self) -> Option<u64> {
        self.remaining
    }

    /// Records that a server sent `sent` bytes from [`offset`](Self::offset)
    /// by other means (`sendfile`).
    pub fn advance(&mut self, sent: u64) {
        let sent = self.remaining.map_or(sent, |remaining| sent.min(remaining));
        self.offset += sent;
        self.remaining = self.remaining.map(|remaining| remaining - sent);
    }

    pub(crate) fn read_next(&mut self) -> io::Result<Option<Bytes>> {
        let want = self.remaining.map_or(self.chunk_size, |remaining| {
            usize::try_from(remaining).map_or(self.chunk_size, |r| r.min(self.chunk_size))
        });
        if want == 0 {
            return Ok(None);
        }
        if self.cursor != self.offset {
            self.file.seek(SeekFrom::Start(self.offset))?;
            self.cursor = self.offset;
        }
        let mut buf = BytesMut::zeroed(want);
        let read = loop {
            match self.file.read(&mut buf) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        if read == 0 {
            return match self.remaining {
                Some(remaining) if remaining > 0 => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("file ended {remaining} bytes before the promised length"),
                )),
                _ => Ok(None),
            };
        }
        buf.truncate(read);
        self.cursor += read as u64;
        self.advance(read as u64);
        Ok(Some(buf.freeze()))
    }
}
