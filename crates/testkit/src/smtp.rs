//! An in-process SMTP server for tests: it accepts every message on a loopback port, keeps
//! what it received (envelope and raw data) for the test to read, and can be stopped and
//! started again on the same port to play a mail-server outage (while stopped, connections
//! are refused).
//!
//! It speaks just enough SMTP for a real client (lettre): the 220 greeting, EHLO/HELO,
//! MAIL FROM, RCPT TO, DATA with dot-unstuffing, RSET, NOOP and QUIT. No TLS, no AUTH.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// The name the sink gives itself in its replies.
const NAME: &str = "usher-test-sink";
/// Longest command line or data line accepted: far above what a mail client sends.
const MAX_LINE: usize = 64 * 1024;
/// Largest message accepted.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// One message as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The `MAIL FROM` address, without angle brackets (empty for the null sender).
    pub from: String,
    /// The `RCPT TO` addresses, in order, without angle brackets.
    pub recipients: Vec<String>,
    /// The message as sent after `DATA`, dot-unstuffed, lines ending in CRLF, without the
    /// final `.` line.
    pub data: Vec<u8>,
}

impl Received {
    /// The data as text (lossy: a test message is ASCII after transfer encoding).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// A running (or stopped) SMTP sink on `127.0.0.1`.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    arrived: Notify,
}

impl SmtpSink {
    /// Listens on a free loopback port.
    pub async fn start() -> SmtpSink {
        let listener = bind("127.0.0.1:0".parse().expect("loopback address"))
            .unwrap_or_else(|e| panic!("cannot bind the SMTP sink: {e}"));
        let addr = listener.local_addr().expect("SMTP sink address");
        let shared = Arc::new(Shared::default());
        let server = tokio::spawn(serve(listener, shared.clone()));
        SmtpSink {
            addr,
            shared,
            server: Mutex::new(Some(server)),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:PORT`, for `USHER_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Stops listening and drops every open connection, mid-conversation or not: from now on
    /// connections are refused. What was received stays.
    pub async fn stop(&self) {
        let server = self.server.lock().expect("sink lock").take();
        if let Some(server) = server {
            server.abort();
            // Wait until the listener and the connections are really gone.
            let _ = server.await;
        }
    }

    /// Listens again on the same port. Panics if it is running, or if the port was taken in
    /// the meantime.
    pub async fn restart(&self) {
        let mut server = self.server.lock().expect("sink lock");
        assert!(server.is_none(), "the SMTP sink is already running");
        let listener =
            bind(self.addr).unwrap_or_else(|e| panic!("cannot listen again on {}: {e}", self.addr));
        *server = Some(tokio::spawn(serve(listener, self.shared.clone())));
    }

    pub fn is_running(&self) -> bool {
        self.server.lock().expect("sink lock").is_some()
    }

    /// Every message received so far, in order of arrival.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("sink lock").clone()
    }

    /// Waits until at least `n` messages have arrived, then returns all of them. Panics after
    /// `timeout`, saying how many came.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register before looking, so that an arrival between the look and the wait is
            // not missed.
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "the SMTP sink received {} message(s) within {timeout:?}, expected {n}",
                    self.received().len()
                );
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Ok(mut server) = self.server.lock() {
            if let Some(server) = server.take() {
                server.abort();
            }
        }
    }
}

/// A listener that can take the port again right after the previous one closed (the closed
/// connections may linger in TIME_WAIT).
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(128)
}

/// Accepts connections until aborted; aborting drops the set, which aborts every connection.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let shared = shared.clone();
                    connections.spawn(async move {
                        // A client that hangs up mid-way is no failure of the sink.
                        let _ = converse(stream, &shared).await;
                    });
                }
            }
            // Reap finished connections so that the set does not grow for the whole test.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Where a conversation stands.
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    recipients: Vec<String>,
}

async fn converse(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write
        .write_all(format!("220 {NAME} ESMTP ready\r\n").as_bytes())
        .await?;
    let mut tx = Transaction::default();
    let mut line = Vec::new();
    loop {
        if !read_line(&mut read, &mut line).await? {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, argument) = match text.split_once(' ') {
            Some((verb, argument)) => (verb.to_ascii_uppercase(), argument.trim()),
            None => (text.to_ascii_uppercase(), ""),
        };
        let reply: String = match verb.as_str() {
            "EHLO" => {
                tx = Transaction::default();
                format!("250-{NAME} greets {argument}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE {MAX_MESSAGE}\r\n")
            }
            "HELO" => {
                tx = Transaction::default();
                format!("250 {NAME}\r\n")
            }
            "MAIL" => match address_after(argument, "FROM:") {
                Some(from) => {
                    tx = Transaction {
                        from: Some(from),
                        recipients: Vec::new(),
                    };
                    "250 OK\r\n".into()
                }
                None => "501 Syntax: MAIL FROM:<address>\r\n".into(),
            },
            "RCPT" => match (&tx.from, address_after(argument, "TO:")) {
                (None, _) => "503 MAIL first\r\n".into(),
                (Some(_), Some(to)) => {
                    tx.recipients.push(to);
                    "250 OK\r\n".into()
                }
                (Some(_), None) => "501 Syntax: RCPT TO:<address>\r\n".into(),
            },
            "DATA" => {
                if tx.recipients.is_empty() {
                    "503 RCPT first\r\n".into()
                } else {
                    write
                        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    let Some(data) = read_data(&mut read).await? else {
                        return Ok(());
                    };
                    let done = std::mem::take(&mut tx);
                    let mut received = shared.received.lock().expect("sink lock");
                    received.push(Received {
                        from: done.from.unwrap_or_default(),
                        recipients: done.recipients,
                        data,
                    });
                    let n = received.len();
                    drop(received);
                    shared.arrived.notify_waiters();
                    format!("250 OK: queued as {n}\r\n")
                }
            }
            "RSET" => {
                tx = Transaction::default();
                "250 OK\r\n".into()
            }
            "NOOP" => "250 OK\r\n".into(),
            "QUIT" => {
                write
                    .write_all(format!("221 {NAME} closing\r\n").as_bytes())
                    .await?;
                return Ok(());
            }
            "" => "500 Empty command\r\n".into(),
            _ => "502 Command not implemented\r\n".into(),
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

/// Reads one line, ending in LF, into `line`; `false` at the end of the stream.
async fn read_line(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    line.clear();
    let n = (&mut *read)
        .take(MAX_LINE as u64)
        .read_until(b'\n', line)
        .await?;
    if n == 0 {
        return Ok(false);
    }
    if !line.ends_with(b"\n") && n >= MAX_LINE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "line too long",
        ));
    }
    Ok(true)
}

/// The data after `354`, up to the line holding a single `.`; leading dots of other lines are
/// unstuffed (RFC 5321 §4.5.2). `None` if the client left before the end.
async fn read_data(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        if !read_line(read, &mut line).await? {
            return Ok(None);
        }
        let content = line
            .strip_suffix(b"\r\n")
            .or_else(|| line.strip_suffix(b"\n"))
            .unwrap_or(&line);
        if content == b"." {
            return Ok(Some(data));
        }
        let content = content.strip_prefix(b".").unwrap_or(content);
        if data.len() + content.len() + 2 > MAX_MESSAGE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "message too large",
            ));
        }
        data.extend_from_slice(content);
        data.extend_from_slice(b"\r\n");
    }
}

/// `FROM:<a@b> PARAMS` → `a@b`; parameters such as `BODY=8BITMIME` are ignored.
fn address_after(argument: &str, keyword: &str) -> Option<String> {
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_from_commands() {
        assert_eq!(
            address_after("FROM:<a@b.org> BODY=8BITMIME", "FROM:").as_deref(),
            Some("a@b.org")
        );
        assert_eq!(address_after("to: <c@d>", "TO:").as_deref(), Some("c@d"));
        assert_eq!(address_after("FROM:<>", "FROM:").as_deref(), Some(""));
        assert_eq!(address_after("FROM:a@b", "FROM:"), None);
        assert_eq!(address_after("TO:<x>", "FROM:"), None);
    }
}
