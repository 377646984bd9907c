//! Inherited listeners: systemd socket activation (`sd_listen_fds(3)`).
//!
//! A service manager that opens the listening sockets itself starts the
//! server with them already open from file descriptor 3 on, and says so in
//! three environment variables: `LISTEN_PID` (the process they are meant
//! for, so that a child that inherits the environment does not take them
//! too), `LISTEN_FDS` (how many) and, optionally, `LISTEN_FDNAMES` (their
//! names, separated by colons, from the `FileDescriptorName=` of the socket
//! units). [`ListenFds::take`] checks all three, takes ownership of the
//! descriptors exactly once per process, marks them close-on-exec so that
//! nothing the application spawns inherits them, and hands them out as
//! [`InheritedListener`]s that become a TCP or Unix listener.
//!
//! The environment variables are left in place: removing them is not
//! sound while other threads may read the environment, and `LISTEN_PID`
//! already keeps any child process from acting on them.
//!
//! Linux only, like systemd.
//!
//! ```no_run
//! use rgi_server::listen_fds::{ListenFds, ListenerKind};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! if let Some(inherited) = ListenFds::take()? {
//!     for listener in inherited {
//!         match listener.kind()? {
//!             ListenerKind::Tcp => { let tcp = listener.into_tcp()?; /* serve it */ }
//!             ListenerKind::Unix => { let unix = listener.into_unix()?; /* serve it */ }
//!             _ => eprintln!("ignoring listener {}", listener.name()),
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
use std::ffi::OsString;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::{Socket, Type};

/// The first inherited descriptor: 0, 1 and 2 are the standard streams.
pub const LISTEN_FDS_START: RawFd = 3;

/// The most descriptors this module takes: far more than any deployment
/// passes, and small enough that a corrupt `LISTEN_FDS` cannot make it walk
/// the whole descriptor table.
pub const MAX_LISTEN_FDS: usize = 1024;

/// Set once the descriptors have been taken, so that no two owners ever
/// close the same descriptor.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// Why the inherited listeners could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenFdsError {
    /// `LISTEN_PID` or `LISTEN_FDS` is set without the other.
    #[error("{present} is set but {missing} is not")]
    Incomplete {
        /// The variable that is set.
        present: &'static str,
        /// The one that is missing.
        missing: &'static str,
    },
    /// A variable that is not a decimal number, or not valid Unicode.
    #[error("{variable}={value:?} is not a valid value")]
    Invalid {
        /// The variable's name.
        variable: &'static str,
        /// Its value, lossily decoded.
        value: String,
    },
    /// `LISTEN_PID` names another process: the variables were inherited
    /// from a parent and the descriptors, if any, are not this process's.
    #[error("LISTEN_PID is {listen_pid}, but this process is {pid}")]
    OtherProcess {
        /// The `LISTEN_PID` value.
        listen_pid: u32,
        /// This process's id.
        pid: u32,
    },
    /// `LISTEN_FDS` is zero or above [`MAX_LISTEN_FDS`].
    #[error("LISTEN_FDS={0} is outside 1..={MAX_LISTEN_FDS}")]
    Count(usize),
    /// `LISTEN_FDNAMES` names another number of descriptors.
    #[error("LISTEN_FDNAMES has {names} names for {fds} descriptors")]
    NameCount {
        /// How many names.
        names: usize,
        /// How many descriptors.
        fds: usize,
    },
    /// The descriptors were already taken by this process.
    #[error("the inherited descriptors were already taken")]
    AlreadyTaken,
    /// A descriptor the variables announce is not open.
    #[error("inherited descriptor {0} is not open")]
    NotOpen(RawFd),
    /// A descriptor that is not a listening stream socket of a family the
    /// server serves (TCP over IPv4 or IPv6, or a Unix domain socket).
    #[error("inherited descriptor {fd} ({name}) is not a listener the server can use: {why}")]
    Unusable {
        /// The descriptor.
        fd: RawFd,
        /// Its name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A system call on a descriptor failed.
    #[error("inherited descriptor {fd}: {source}")]
    Io {
        /// The descriptor.
        fd: RawFd,
        /// The error.
        source: io::Error,
    },
}

/// The kind of listener an inherited descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListenerKind {
    /// A TCP listener (IPv4 or IPv6).
    Tcp,
    /// A Unix domain stream listener.
    Unix,
}

/// One inherited, listening descriptor with its name.
#[derive(Debug)]
pub struct InheritedListener {
    fd: RawFd,
    name: String,
    socket: Socket,
}

impl InheritedListener {
    /// The name from `LISTEN_FDNAMES`, or `"unknown"` when the variable is
    /// unset (systemd's own default).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The descriptor number it was inherited as.
    #[must_use]
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Whether it is a TCP or a Unix domain listener.
    ///
    /// # Errors
    ///
    /// [`ListenFdsError::Io`] when its address cannot be read, and
    /// [`ListenFdsError::Unusable`] for any other family.
    pub fn kind(&self) -> Result<ListenerKind, ListenFdsError> {
        let address = self
            .socket
            .local_addr()
            .map_err(|source| ListenFdsError::Io {
                fd: self.fd,
                source,
            })?;
        if address.is_ipv4() || address.is_ipv6() {
            Ok(ListenerKind::Tcp)
        } else if address.is_unix() {
            Ok(ListenerKind::Unix)
        } else {
            Err(self.unusable("neither an IP nor a Unix domain socket"))
        }
    }

    /// The listener as a non-blocking `std` TCP listener, ready for
    /// `tokio::net::TcpListener::from_std`.
    ///
    /// # Errors
    ///
    /// [`ListenFdsError::Unusable`] when it is not a TCP listener, and
    /// [`ListenFdsError::Io`] when it cannot be made non-blocking.
    pub fn into_tcp(self) -> Result<TcpListener, ListenFdsError> {
        if self.kind()? != ListenerKind::Tcp {
            return Err(self.unusable("not a TCP listener"));
        }
        self.nonblocking()?;
        Ok(TcpListener::from(OwnedFd::from(self.socket)))
    }

    /// The listener as a non-blocking `std` Unix domain listener, ready for
    /// `tokio::net::UnixListener::from_std`.
    ///
    /// # Errors
    ///
    /// [`ListenFdsError::Unusable`] when it is not a Unix domain listener,
    /// and [`ListenFdsError::Io`] when it cannot be made non-blocking.
    pub fn into_unix(self) -> Result<UnixListener, ListenFdsError> {
        if self.kind()? != ListenerKind::Unix {
            return Err(self.unusable("not a Unix domain listener"));
        }
        self.nonblocking()?;
        Ok(UnixListener::from(OwnedFd::from(self.socket)))
    }

    fn nonblocking(&self) -> Result<(), ListenFdsError> {
        self.socket
            .set_nonblocking(true)
            .map_err(|source| ListenFdsError::Io {
                fd: self.fd,
                source,
            })
    }

    fn unusable(&self, why: &'static str) -> ListenFdsError {
        ListenFdsError::Unusable {
            fd: self.fd,
            name: self.name.clone(),
            why,
        }
    }
}

/// The listeners a service manager passed to this process.
#[derive(Debug)]
pub struct ListenFds {
    listeners: Vec<InheritedListener>,
}

impl ListenFds {
    /// Takes the inherited listeners, if the environment announces any for
    /// this process: `Ok(None)` when neither `LISTEN_PID` nor `LISTEN_FDS`
    /// is set.
    ///
    /// # Errors
    ///
    /// A [`ListenFdsError`] when the variables are inconsistent, name
    /// another process, the descriptors were already taken, or one of them
    /// is not an open, listening stream socket. Descriptors already taken
    /// when a later one fails are closed.
    pub fn take() -> Result<Option<Self>, ListenFdsError> {
        let pid = std::env::var_os("LISTEN_PID");
        let fds = std::env::var_os("LISTEN_FDS");
        let names = std::env::var_os("LISTEN_FDNAMES");
        let Some(announced) = announced(pid, fds, names, std::process::id())? else {
            return Ok(None);
        };
        if TAKEN.swap(true, Ordering::SeqCst) {
            return Err(ListenFdsError::AlreadyTaken);
        }
        let mut listeners = Vec::with_capacity(announced.len());
        for (offset, name) in announced.into_iter().enumerate() {
            let fd = LISTEN_FDS_START
                + RawFd::try_from(offset).map_err(|_| ListenFdsError::Count(offset))?;
            listeners.push(adopt(fd, name)?);
        }
        Ok(Some(ListenFds { listeners }))
    }

    /// How many listeners there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.listeners.len()
    }

    /// Whether there are none (never true for a value [`take`](Self::take)
    /// returned).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }

    /// The listeners, in descriptor order.
    #[must_use]
    pub fn listeners(&self) -> &[InheritedListener] {
        &self.listeners
    }
}

impl IntoIterator for ListenFds {
    type Item = InheritedListener;
    type IntoIter = std::vec::IntoIter<InheritedListener>;

    fn into_iter(self) -> Self::IntoIter {
        self.listeners.into_iter()
    }
}

/// The names of the descriptors the variables announce for process `pid`,
/// one per descriptor, or `None` when they announce nothing.
fn announced(
    pid_var: Option<OsString>,
    fds_var: Option<OsString>,
    names_var: Option<OsString>,
    pid: u32,
) -> Result<Option<Vec<String>>, ListenFdsError> {
    let (pid_var, fds_var) = match (pid_var, fds_var) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(ListenFdsError::Incomplete {
                present: "LISTEN_PID",
                missing: "LISTEN_FDS",
            });
        }
        (None, Some(_)) => {
            return Err(ListenFdsError::Incomplete {
                present: "LISTEN_FDS",
                missing: "LISTEN_PID",
            });
        }
        (Some(pid_var), Some(fds_var)) => (pid_var, fds_var),
    };
    let listen_pid: u32 = number("LISTEN_PID", &pid_var)?;
    if listen_pid != pid {
        return Err(ListenFdsError::OtherProcess { listen_pid, pid });
    }
    let count: usize = number("LISTEN_FDS", &fds_var)?;
    if count == 0 || count > MAX_LISTEN_FDS {
        return Err(ListenFdsError::Count(count));
    }
    let names = match names_var {
        None => vec!["unknown".to_owned(); count],
        Some(value) => {
            let text = value.to_str().ok_or_else(|| ListenFdsError::Invalid {
                variable: "LISTEN_FDNAMES",
                value: value.to_string_lossy().into_owned(),
            })?;
            let names: Vec<String> = text.split(':').map(str::to_owned).collect();
            if names.len() != count {
                return Err(ListenFdsError::NameCount {
                    names: names.len(),
                    fds: count,
                });
            }
            names
        }
    };
    Ok(Some(names))
}

/// A decimal number without sign, leading `+` or whitespace.
fn number<T: std::str::FromStr>(
    variable: &'static str,
    value: &OsString,
) -> Result<T, ListenFdsError> {
    let invalid = || ListenFdsError::Invalid {
        variable,
        value: value.to_string_lossy().into_owned(),
    };
    let text = value.to_str().ok_or_else(invalid)?;
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid());
    }
    text.parse().map_err(|_| invalid())
}

/// Takes ownership of inherited descriptor `fd` and checks that it is a
/// listening stream socket.
#[allow(unsafe_code)]
fn adopt(fd: RawFd, name: String) -> Result<InheritedListener, ListenFdsError> {
    // An `OwnedFd` must own an open descriptor; /proc shows which are.
    if std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err() {
        return Err(ListenFdsError::NotOpen(fd));
    }
    // SAFETY: `fd` is open (checked just above) and was passed to this
    // process by its service manager, as LISTEN_PID (which matched our pid)
    // and LISTEN_FDS say; TAKEN guarantees this runs at most once per
    // descriptor in this process, so no other `OwnedFd` in this crate owns
    // it. Nothing else in a server that calls `ListenFds::take` may use
    // descriptors from 3 to 3 + LISTEN_FDS - 1, which is the contract of
    // socket activation (sd_listen_fds(3)).
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let socket = Socket::from(owned);
    let io = |source| ListenFdsError::Io { fd, source };
    // Inherited descriptors come without close-on-exec; a process the
    // application spawns must not hold the server's listeners open.
    socket.set_cloexec(true).map_err(io)?;
    let listener = InheritedListener {
        fd: socket.as_raw_fd(),
        name,
        socket,
    };
    match listener.socket.r#type() {
        Ok(kind) if kind == Type::STREAM => {}
        Ok(_) => return Err(listener.unusable("not a stream socket")),
        Err(error) if error.raw_os_error() == Some(88) => {
            // ENOTSOCK on Linux.
            return Err(listener.unusable("not a socket"));
        }
        Err(source) => return Err(ListenFdsError::Io { fd, source }),
    }
    if !listener.socket.is_listener().map_err(io)? {
        return Err(listener.unusable("not listening"));
    }
    listener.kind()?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::os::unix::net::UnixStream;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    fn os(text: &str) -> Option<OsString> {
        Some(OsString::from(text))
    }

    #[test]
    fn variables_are_checked() {
        assert!(announced(None, None, None, 7).unwrap().is_none());
        assert_eq!(
            announced(os("7"), os("2"), None, 7).unwrap().unwrap(),
            vec!["unknown", "unknown"]
        );
        assert_eq!(
            announced(os("7"), os("2"), os("web:admin"), 7)
                .unwrap()
                .unwrap(),
            vec!["web", "admin"]
        );
        assert!(matches!(
            announced(os("7"), None, None, 7),
            Err(ListenFdsError::Incomplete {
                missing: "LISTEN_FDS",
                ..
            })
        ));
        assert!(matches!(
            announced(None, os("1"), None, 7),
            Err(ListenFdsError::Incomplete {
                missing: "LISTEN_PID",
                ..
            })
        ));
        assert!(matches!(
            announced(os("8"), os("1"), None, 7),
            Err(ListenFdsError::OtherProcess {
                listen_pid: 8,
                pid: 7
            })
        ));
        for bad in ["", "+1", "-1", " 1", "1x", "99999999999999999999999"] {
            assert!(
                matches!(
                    announced(os("7"), os(bad), None, 7),
                    Err(ListenFdsError::Invalid {
                        variable: "LISTEN_FDS",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            announced(os("seven"), os("1"), None, 7),
            Err(ListenFdsError::Invalid {
                variable: "LISTEN_PID",
                ..
            })
        ));
        assert!(matches!(
            announced(os("7"), os("0"), None, 7),
            Err(ListenFdsError::Count(0))
        ));
        assert!(matches!(
            announced(os("7"), os("1025"), None, 7),
            Err(ListenFdsError::Count(1025))
        ));
        assert!(matches!(
            announced(os("7"), os("2"), os("one"), 7),
            Err(ListenFdsError::NameCount { names: 1, fds: 2 })
        ));
    }

    #[test]
    fn descriptors_that_are_not_listeners_are_refused() {
        use std::os::fd::IntoRawFd;

        // Each descriptor below is this test's own, handed over to `adopt`
        // the way the service manager hands over inherited ones.
        let file = std::fs::File::open("/proc/self/stat")
            .unwrap()
            .into_raw_fd();
        assert!(matches!(
            adopt(file, "file".to_owned()),
            Err(ListenFdsError::Unusable {
                why: "not a socket",
                ..
            })
        ));
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .into_raw_fd();
        assert!(matches!(
            adopt(udp, "udp".to_owned()),
            Err(ListenFdsError::Unusable {
                why: "not a stream socket",
                ..
            })
        ));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let connected = TcpStream::connect(listener.local_addr().unwrap())
            .unwrap()
            .into_raw_fd();
        assert!(matches!(
            adopt(connected, "client".to_owned()),
            Err(ListenFdsError::Unusable {
                why: "not listening",
                ..
            })
        ));
        let adopted = adopt(listener.into_raw_fd(), "web".to_owned()).unwrap();
        assert_eq!(adopted.kind().unwrap(), ListenerKind::Tcp);
        assert!(matches!(
            adopted.into_unix(),
            Err(ListenFdsError::Unusable {
                why: "not a Unix domain listener",
                ..
            })
        ));
        // A descriptor number far above anything open.
        assert!(matches!(
            adopt(1 << 20, "none".to_owned()),
            Err(ListenFdsError::NotOpen(_))
        ));
    }

    /// Marks the re-executed test binary that plays the activated service.
    const CHILD: &str = "RGI_LISTEN_FDS_TEST_CHILD";

    /// The service side: runs only inside the child that
    /// `inherited_listeners_accept` starts, with a TCP listener on fd 3
    /// and a Unix listener on fd 4.
    #[test]
    #[ignore = "the child process of inherited_listeners_accept runs it"]
    fn activated_child() {
        if std::env::var_os(CHILD).is_none() {
            return;
        }
        let inherited = ListenFds::take().unwrap().unwrap();
        assert_eq!(inherited.len(), 2);
        assert!(matches!(
            ListenFds::take(),
            Err(ListenFdsError::AlreadyTaken)
        ));
        let mut listeners = inherited.into_iter();
        let tcp = listeners.next().unwrap();
        let unix = listeners.next().unwrap();
        assert_eq!((tcp.fd(), tcp.name()), (3, "web"));
        assert_eq!((unix.fd(), unix.name()), (4, "admin"));
        assert_eq!(tcp.kind().unwrap(), ListenerKind::Tcp);
        let tcp = tcp.into_tcp().unwrap();
        let unix = unix.into_unix().unwrap();
        // Blocking accepts, bounded by the parent's timeout that kills
        // this process if it hangs.
        tcp.set_nonblocking(false).unwrap();
        unix.set_nonblocking(false).unwrap();
        // Each connection is closed before the next accept: the parent
        // reads each reply to its end.
        tcp.accept().unwrap().0.write_all(b"tcp ok").unwrap();
        unix.accept().unwrap().0.write_all(b"unix ok").unwrap();
    }

    /// Starts this test binary as an activated service the way systemd
    /// does: listeners on fds 3 and 4, `LISTEN_PID` its own pid (the shell
    /// `exec`s the binary, so `$$` stays its pid), and checks that both
    /// inherited listeners accept connections.
    #[test]
    fn inherited_listeners_accept() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = tcp.local_addr().unwrap();
        let directory = std::env::temp_dir().join(format!("rgi-listen-fds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&directory);
        std::fs::create_dir_all(&directory).unwrap();
        let path = directory.join("admin.sock");
        let unix = UnixListener::bind(&path).unwrap();

        let test_binary = std::env::current_exe().unwrap();
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(
                "exec 3<&0 4>&1 0</dev/null 1>&2; \
                 LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=web:admin exec \"$0\" \"$@\"",
            )
            .arg(&test_binary)
            .args([
                "--exact",
                "--ignored",
                "listen_fds::tests::activated_child",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_FDNAMES")
            .stdin(Stdio::from(OwnedFd::from(tcp)))
            .stdout(Stdio::from(OwnedFd::from(unix)))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();

        let timeout = Duration::from_secs(20);
        let exchange = || -> io::Result<(String, String)> {
            let mut tcp_reply = String::new();
            let mut stream = TcpStream::connect(address)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.read_to_string(&mut tcp_reply)?;
            let mut unix_reply = String::new();
            let mut stream = UnixStream::connect(&path)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.read_to_string(&mut unix_reply)?;
            Ok((tcp_reply, unix_reply))
        };
        let replies = exchange();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() > timeout || replies.is_err() {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut output = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut output);
        }
        let (tcp_reply, unix_reply) = replies
            .unwrap_or_else(|error| panic!("talking to the child: {error}; its output: {output}"));
        assert_eq!(tcp_reply, "tcp ok");
        assert_eq!(unix_reply, "unix ok");
        let status = status.unwrap_or_else(|| panic!("the child did not exit: {output}"));
        let _ = std::fs::remove_dir_all(&directory);
        assert!(status.success(), "child failed: {output}");
        assert!(
            output.contains("1 passed"),
            "the child test did not run: {output}"
        );
    }
}
