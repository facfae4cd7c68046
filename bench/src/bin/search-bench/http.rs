//! A minimal keep-alive HTTP/1.1 GET client over one tokio `TcpStream`.
//!
//! The benchmark needs one request in flight per connection, `Content-Length` bodies and
//! nothing else; hyper's client is not in the dependency tree (axum brings hyper's server
//! side only) and a general client would spend the load generator's share of the two cores
//! on features the measurement does not use.

use std::fmt::Write as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body accepted (a page of 20 results is ~3 KiB).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One keep-alive connection.
pub struct HttpConnection {
    stream: TcpStream,
    host: String,
    request: String,
    buffer: Vec<u8>,
}

/// A response: the status and where the body sits in the connection's buffer.
pub struct Response<'a> {
    /// HTTP status code.
    pub status: u16,
    /// The body bytes.
    pub body: &'a [u8],
}

impl HttpConnection {
    /// Connects to `authority` (`host:port`).
    ///
    /// # Errors
    /// The connection failed.
    pub async fn connect(authority: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(authority).await?;
        // One small request per round trip: never let Nagle hold it back.
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            host: authority.to_owned(),
            request: String::with_capacity(256),
            buffer: vec![0; 16 * 1024],
        })
    }

    /// Sends `GET path` (path and query, already encoded) and reads the whole response.
    ///
    /// # Errors
    /// I/O errors, a malformed or oversized response, chunked encoding, or the server
    /// closing the connection (the caller reconnects).
    pub async fn get(&mut self, path: &str) -> Result<Response<'_>, String> {
        self.request.clear();
        // Writing to a String cannot fail.
        let _ = write!(
            self.request,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\r\n",
            self.host
        );
        self.stream
            .write_all(self.request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;

        // Read until the end of the head.
        let mut filled = 0;
        let head_end = loop {
            if let Some(end) = find_head_end(&self.buffer[..filled]) {
                break end;
            }
            if filled >= MAX_HEAD {
                return Err("response head too large".into());
            }
            filled += self.read_more(filled).await?;
        };
        let head = std::str::from_utf8(&self.buffer[..head_end])
            .map_err(|_| "response head is not UTF-8".to_owned())?;
        let (status, content_length) = parse_head(head)?;
        if content_length > MAX_BODY {
            return Err(format!("response body too large ({content_length} bytes)"));
        }
        let total = head_end + content_length;
        if self.buffer.len() < total {
            self.buffer.resize(total, 0);
        }
        while filled < total {
            filled += self.read_more(filled).await?;
        }
        if filled > total {
            // Only one request is ever in flight, so nothing may follow the body.
            return Err("bytes after the response body".into());
        }
        Ok(Response {
            status,
            body: &self.buffer[head_end..total],
        })
    }

    /// Reads into the buffer after `filled`, growing it if full; returns the bytes read.
    async fn read_more(&mut self, filled: usize) -> Result<usize, String> {
        if filled == self.buffer.len() {
            self.buffer.resize(self.buffer.len() * 2, 0);
        }
        match self.stream.read(&mut self.buffer[filled..]).await {
            Ok(0) => Err("connection closed by the server".into()),
            Ok(n) => Ok(n),
            Err(e) => Err(format!("read: {e}")),
        }
    }
}

/// The index just past `\r\n\r\n`, if the head is complete.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// The status code and `Content-Length` of a response head.
fn parse_head(head: &str) -> Result<(u16, usize), String> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut content_length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("unsupported Transfer-Encoding {value:?}"));
        }
    }
    let content_length = content_length.ok_or("no Content-Length in the response")?;
    Ok((status, content_length))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    #[test]
    fn parses_a_head() {
        let head =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 42\r\n\r\n";
        assert_eq!(find_head_end(head.as_bytes()), Some(head.len()));
        assert_eq!(parse_head(head), Ok((200, 42)));
        assert!(parse_head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head("HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head("garbage").is_err());
    }

    #[tokio::test]
    async fn keeps_the_connection_alive() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut socket = tokio::io::BufReader::new(socket);
            for i in 0..3 {
                let mut line = String::new();
                loop {
                    line.clear();
                    socket.read_line(&mut line).await.unwrap();
                    if line == "\r\n" {
                        break;
                    }
                }
                let body = format!("{{\"n\":{i}}}");
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                socket
                    .get_mut()
                    .write_all(response.as_bytes())
                    .await
                    .unwrap();
            }
        });
        let mut connection = HttpConnection::connect(&address).await.unwrap();
        for i in 0..3 {
            let response = connection.get("/x?a=1").await.unwrap();
            assert_eq!(response.status, 200);
            assert_eq!(response.body, format!("{{\"n\":{i}}}").as_bytes());
        }
        server.await.unwrap();
    }
}
