//! A small real SMTP server for the tests: it accepts any mail on 127.0.0.1 and keeps
//! it in memory. It runs on plain std threads (one accept thread, one thread per
//! connection), so it needs no tokio networking and works from any runtime flavour.
//! `stop` closes the listener and every open connection (clients get refused / EOF);
//! `restart` binds the same port again and keeps what was received.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use lettre::message::{Mailbox as Address, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// A message received by the sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The reverse path of `MAIL FROM:<...>` (empty for the null sender).
    pub from: String,
    /// The forward paths of every accepted `RCPT TO:<...>`, in order.
    pub to: Vec<String>,
    /// The DATA payload, dot-unstuffed, without the terminating `\r\n.\r\n`.
    pub data: String,
}

/// Largest accepted message; bigger ones are read to the end and refused with 552.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;
/// Longest accepted command line (RFC 5321 asks for 512; be generous).
const MAX_COMMAND_LINE: usize = 4096;
/// No client may stay silent longer than this.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// How long `restart` keeps trying to bind the old port.
const REBIND_FOR: Duration = Duration::from_secs(5);

type Mailbox = Arc<Mutex<Vec<ReceivedMail>>>;

pub struct SmtpSink {
    port: u16,
    messages: Mailbox,
    running: Option<Running>,
}

struct Running {
    stop: Arc<AtomicBool>,
    acceptor: JoinHandle<()>,
}

impl SmtpSink {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("smtp sink: bind 127.0.0.1:0");
        let port = listener.local_addr().expect("smtp sink: local addr").port();
        let messages = Mailbox::default();
        let running = Some(serve(listener, messages.clone()));
        SmtpSink {
            port,
            messages,
            running,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:<port>` (plain SMTP, usable as the application's `SMTP_URL`).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Everything received so far (also across `stop` / `restart`).
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.messages).clone()
    }

    /// Polls until at least `n` messages arrived or `timeout` passed, then returns
    /// whatever there is (the caller asserts on the count).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes the listener and every open connection, and waits for all the sink's
    /// threads to end: afterwards connecting is refused and the port is free.
    /// Does nothing when already stopped.
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop.store(true, Ordering::SeqCst);
            // The accept thread shuts the connections down and joins their threads.
            let _ = running.acceptor.join();
        }
    }

    /// Binds the same port again (retrying for up to 5 s) and serves, keeping the
    /// messages received so far. A running sink is stopped first.
    pub fn restart(&mut self) {
        self.stop();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + REBIND_FOR;
        // std sets SO_REUSEADDR on Unix listeners, so TIME_WAIT leftovers do not block.
        let listener = loop {
            match TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(e) if Instant::now() >= deadline => {
                    panic!("smtp sink: cannot bind {addr} again: {e}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        self.running = Some(serve(listener, self.messages.clone()));
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock(m: &Mailbox) -> MutexGuard<'_, Vec<ReceivedMail>> {
    // A panicking connection thread must not hide the mail from the test.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn serve(listener: TcpListener, messages: Mailbox) -> Running {
    listener
        .set_nonblocking(true)
        .expect("smtp sink: nonblocking listener");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let acceptor = std::thread::Builder::new()
        .name("smtp-sink-accept".into())
        .spawn(move || accept_loop(listener, messages, flag))
        .expect("smtp sink: spawn accept thread");
    Running { stop, acceptor }
}

fn accept_loop(listener: TcpListener, messages: Mailbox, stop: Arc<AtomicBool>) {
    let mut conns: Vec<(TcpStream, JoinHandle<()>)> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                conns.retain(|(_, h)| !h.is_finished());
                let Ok(handle) = stream.try_clone() else {
                    continue;
                };
                let messages = messages.clone();
                let spawned = std::thread::Builder::new()
                    .name("smtp-sink-conn".into())
                    .spawn(move || {
                        // Ends on QUIT, EOF, timeout, I/O error or shutdown by `stop`.
                        let _ = session(&stream, &messages);
                        // The accept thread holds a clone: close for real.
                        let _ = stream.shutdown(Shutdown::Both);
                    });
                match spawned {
                    Ok(thread) => conns.push((handle, thread)),
                    Err(_) => {
                        let _ = handle.shutdown(Shutdown::Both);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(_) => std::thread::sleep(ACCEPT_POLL),
        }
    }
    // Nothing new can arrive once the listener is gone.
    drop(listener);
    for (stream, _) in &conns {
        let _ = stream.shutdown(Shutdown::Both);
    }
    for (_, thread) in conns {
        let _ = thread.join();
    }
}

enum Line {
    /// The line with its terminator (`\n` or `\r\n`).
    Full(Vec<u8>),
    /// The line was longer than allowed; it has been read and thrown away.
    TooLong,
    /// The peer closed the connection (a partial last line is dropped).
    Eof,
}

/// Reads one line, keeping at most `max` bytes of it in memory.
fn read_line(r: &mut impl BufRead, max: usize) -> io::Result<Line> {
    let mut buf = Vec::new();
    let mut too_long = false;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(Line::Eof);
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            if buf.len() + take > max {
                too_long = true;
                buf = Vec::new();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        r.consume(take);
        if done {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Full(buf)
            });
        }
    }
}

fn strip_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The address in `<addr>` (parameters after it are ignored), or a bare address.
fn parse_path(arg: &str) -> Option<String> {
    let arg = arg.trim_start();
    if let Some(rest) = arg.strip_prefix('<') {
        rest.find('>').map(|end| rest[..end].to_string())
    } else {
        arg.split_whitespace().next().map(str::to_string)
    }
}

/// `arg` without its case-insensitive `keyword` prefix (`FROM:` / `TO:`).
fn strip_keyword<'a>(arg: &'a str, keyword: &str) -> Option<&'a str> {
    let head = arg.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| &arg[keyword.len()..])
}

fn session(stream: &TcpStream, messages: &Mailbox) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(stream);
    let mut out = stream;
    let mut reply = |text: &str| out.write_all(text.as_bytes());

    reply("220 sink ESMTP\r\n")?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    loop {
        let line = match read_line(&mut reader, MAX_COMMAND_LINE) {
            Ok(Line::Full(line)) => line,
            Ok(Line::TooLong) => {
                reply("500 5.5.2 line too long\r\n")?;
                continue;
            }
            Ok(Line::Eof) => return Ok(()),
            Err(e) => {
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) {
                    let _ = reply("421 4.4.2 sink timeout\r\n");
                }
                return Err(e);
            }
        };
        let line = String::from_utf8_lossy(strip_eol(&line)).into_owned();
        let (verb, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                from = None;
                to.clear();
                reply("250-sink\r\n250 8BITMIME\r\n")?;
            }
            "HELO" => {
                from = None;
                to.clear();
                reply("250 sink\r\n")?;
            }
            "MAIL" => match strip_keyword(arg, "FROM:").and_then(parse_path) {
                Some(path) => {
                    from = Some(path);
                    to.clear();
                    reply("250 2.1.0 OK\r\n")?;
                }
                None => reply("501 5.5.4 syntax: MAIL FROM:<address>\r\n")?,
            },
            "RCPT" => match strip_keyword(arg, "TO:").and_then(parse_path) {
                Some(_) if from.is_none() => reply("503 5.5.1 MAIL first\r\n")?,
                Some(path) => {
                    to.push(path);
                    reply("250 2.1.5 OK\r\n")?;
                }
                None => reply("501 5.5.4 syntax: RCPT TO:<address>\r\n")?,
            },
            "DATA" => {
                if from.is_none() || to.is_empty() {
                    reply("503 5.5.1 MAIL and RCPT first\r\n")?;
                    continue;
                }
                reply("354 end data with <CR><LF>.<CR><LF>\r\n")?;
                let Some(data) = read_data(&mut reader)? else {
                    from = None;
                    to.clear();
                    reply("552 5.3.4 message too big\r\n")?;
                    continue;
                };
                let mail = ReceivedMail {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                };
                lock(messages).push(mail);
                reply("250 2.0.0 OK queued\r\n")?;
            }
            "RSET" => {
                from = None;
                to.clear();
                reply("250 2.0.0 OK\r\n")?;
            }
            "NOOP" => reply("250 2.0.0 OK\r\n")?,
            "QUIT" => {
                reply("221 2.0.0 bye\r\n")?;
                return Ok(());
            }
            _ => reply("502 5.5.1 command not implemented\r\n")?,
        }
    }
}

/// Reads DATA lines up to the `.` line. `Ok(None)`: the message was over the limit
/// (it has still been read to its end, so the session can go on).
fn read_data(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut data: Vec<u8> = Vec::new();
    let mut oversize = false;
    loop {
        // Once over the limit, lines are only looked at for the final dot.
        let max = if oversize {
            1024
        } else {
            MAX_MESSAGE - data.len()
        };
        let line = match read_line(reader, max)? {
            Line::Full(line) => line,
            Line::TooLong => {
                oversize = true;
                data = Vec::new();
                continue;
            }
            Line::Eof => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside DATA",
                ));
            }
        };
        if strip_eol(&line) == b"." {
            break;
        }
        if !oversize {
            let unstuffed = line.strip_prefix(b".").unwrap_or(&line);
            data.extend_from_slice(unstuffed);
        }
    }
    if oversize {
        return Ok(None);
    }
    // The line break before the final dot belongs to the terminator.
    let end = strip_eol(&data).len();
    data.truncate(end);
    Ok(Some(String::from_utf8_lossy(&data).into_owned()))
}

// ---------------------------------------------------------------------------------
// Finding links in received mail
// ---------------------------------------------------------------------------------

/// The first absolute `http(s)://` URL in the message whose path (with query) starts
/// with `path_prefix`, e.g. `"/verify-email?token="`. MIME parts are decoded
/// (quoted-printable, base64) and text/plain parts are searched before HTML ones
/// (whose entities, `&amp;` above all, are decoded); the raw text is the last resort.
pub fn extract_link(data: &str, path_prefix: &str) -> Option<String> {
    let mut plain = Vec::new();
    let mut other = Vec::new();
    let mut html = Vec::new();
    collect_parts(data, 0, &mut plain, &mut other, &mut html);

    let mut candidates: Vec<String> = Vec::new();
    candidates.extend(plain);
    candidates.extend(other);
    candidates.extend(html.iter().map(|h| decode_html_entities(h)));
    // Fallbacks, in case the structure was not understood.
    let qp = decode_quoted_printable(data);
    candidates.push(data.to_string());
    candidates.push(decode_html_entities(&qp));
    candidates.push(qp);

    candidates
        .iter()
        .find_map(|text| find_url(text, path_prefix))
}

/// The message's `Subject`, its RFC 2047 encoded words (`=?utf-8?b?…?=` or `?q?`)
/// decoded; adjacent encoded words join without the space between them.
pub fn subject(data: &str) -> Option<String> {
    let (headers, _) = split_entity(data);
    let raw = header(&headers, "subject")?;
    let mut out = String::new();
    let mut last_encoded = false;
    for word in raw.split_whitespace() {
        let decoded = word
            .strip_prefix("=?")
            .and_then(|w| w.strip_suffix("?="))
            .and_then(|w| {
                let mut it = w.splitn(3, '?');
                let (_charset, enc, text) = (it.next()?, it.next()?, it.next()?);
                match enc {
                    "B" | "b" => decode_base64(text),
                    "Q" | "q" => Some(decode_quoted_printable(&text.replace('_', " "))),
                    _ => None,
                }
            });
        match decoded {
            Some(d) => {
                if !out.is_empty() && !last_encoded {
                    out.push(' ');
                }
                out.push_str(&d);
                last_encoded = true;
            }
            None => {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(word);
                last_encoded = false;
            }
        }
    }
    Some(out)
}

/// The decoded text/plain parts, joined.
pub fn plain_text(data: &str) -> String {
    let (mut plain, mut other, mut html) = (Vec::new(), Vec::new(), Vec::new());
    collect_parts(data, 0, &mut plain, &mut other, &mut html);
    plain.join("\n")
}

/// Splits an entity (headers + body) into decoded leaf texts by content type.
fn collect_parts(
    entity: &str,
    depth: usize,
    plain: &mut Vec<String>,
    other: &mut Vec<String>,
    html: &mut Vec<String>,
) {
    let (headers, body) = split_entity(entity);
    let content_type = header(&headers, "content-type").unwrap_or_default();
    let mime_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime_type.starts_with("multipart/")
        && depth < 8
        && let Some(boundary) = header_param(&content_type, "boundary")
    {
        for part in split_multipart(body, &boundary) {
            collect_parts(&part, depth + 1, plain, other, html);
        }
        return;
    }
    let encoding = header(&headers, "content-transfer-encoding")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let text = match encoding.as_str() {
        "quoted-printable" => decode_quoted_printable(body),
        "base64" => decode_base64(body).unwrap_or_else(|| body.to_string()),
        _ => body.to_string(),
    };
    match mime_type.as_str() {
        "text/plain" => plain.push(text),
        "text/html" => html.push(text),
        _ => other.push(text),
    }
}

/// Headers (unfolded, as name / value) and body. Without a blank line it is all body.
fn split_entity(entity: &str) -> (Vec<(String, String)>, &str) {
    let split = [("\r\n\r\n", 4), ("\n\n", 2)]
        .iter()
        .filter_map(|(sep, len)| entity.find(sep).map(|i| (i, *len)))
        .min();
    let Some((at, len)) = split else {
        return (Vec::new(), entity);
    };
    let (head, body) = (&entity[..at], &entity[at + len..]);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        } else {
            // Not a header block after all.
            return (Vec::new(), entity);
        }
    }
    (headers, body)
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// A `name=value` or `name="value"` parameter of a header value.
fn header_param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (n, v) = param.split_once('=')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The parts between `--boundary` lines (up to `--boundary--`).
fn split_multipart(body: &str, boundary: &str) -> Vec<String> {
    let open = format!("--{boundary}");
    let close = format!("--{boundary}--");
    let mut parts = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_end();
        if trimmed == close || trimmed == open {
            if let Some(lines) = current.take() {
                parts.push(lines.join("\r\n"));
            }
            if trimmed == close {
                return parts;
            }
            current = Some(Vec::new());
        } else if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    if let Some(lines) = current {
        parts.push(lines.join("\r\n"));
    }
    parts
}

/// Quoted-printable: soft line breaks (`=` at the end of a line) are removed and
/// `=XX` becomes the byte 0xXX; anything else is kept as it is.
fn decode_quoted_printable(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'=' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        // A soft line break, possibly with (illegal but seen) trailing blanks.
        let mut j = i + 1;
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        if bytes[j..].starts_with(b"\r\n") {
            i = j + 2;
            continue;
        }
        if bytes[j..].starts_with(b"\n") {
            i = j + 1;
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(b'=');
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn decode_base64(text: &str) -> Option<String> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The entities an HTML escaper produces: named basics and numeric references.
fn decode_html_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &rest[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let code = if let Some(hex) =
                        name.strip_prefix("#x").or_else(|| name.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok()
                    } else {
                        name.strip_prefix('#').and_then(|d| d.parse().ok())
                    };
                    code.and_then(char::from_u32)
                }
            };
            c.map(|c| (c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The first `http://` or `https://` URL in `text` whose path starts with `prefix`.
fn find_url(text: &str, prefix: &str) -> Option<String> {
    let mut from = 0;
    while let Some(found) = next_scheme(&text[from..]) {
        let start = from + found;
        let url_len = text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(text.len() - start);
        let url =
            text[start..start + url_len].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']']);
        let after_scheme = url.find("://").map_or(url.len(), |i| i + 3);
        let path = url[after_scheme..]
            .find(['/', '?', '#'])
            .map_or("", |i| &url[after_scheme + i..]);
        if path.starts_with(prefix) {
            return Some(url.to_string());
        }
        from = start + url_len.max(1);
    }
    None
}

fn next_scheme(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    [lower.find("https://"), lower.find("http://")]
        .into_iter()
        .flatten()
        .min()
}

// ---------------------------------------------------------------------------------
// Tests of the sink itself
// ---------------------------------------------------------------------------------

fn test_message(subject: &str, body: &str) -> Message {
    Message::builder()
        .from(
            "Portcullis <noreply@example.com>"
                .parse::<Address>()
                .unwrap(),
        )
        .to("alice@example.com".parse::<Address>().unwrap())
        .subject(subject)
        .body(body.to_string())
        .unwrap()
}

fn transport(port: u16) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .timeout(Some(Duration::from_secs(10)))
        .build()
}

/// A line-oriented raw SMTP client for protocol checks.
struct RawClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RawClient {
    fn connect(port: u16) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let writer = stream.try_clone().unwrap();
        RawClient {
            reader: BufReader::new(stream),
            writer,
        }
    }

    fn line(&mut self) -> String {
        let mut s = String::new();
        self.reader.read_line(&mut s).unwrap();
        s
    }

    fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).unwrap();
    }

    fn command(&mut self, text: &str) -> String {
        self.send(text);
        self.line()
    }
}

#[tokio::test]
async fn smtp_sink_receives_stops_and_restarts() {
    let mut sink = SmtpSink::start();
    assert_eq!(sink.url(), format!("smtp://127.0.0.1:{}", sink.port()));
    let mailer = transport(sink.port());

    mailer
        .send(test_message("first", "hello\r\n.leading dot\r\nbye"))
        .await
        .expect("send to a running sink");
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].from, "noreply@example.com");
    assert_eq!(got[0].to, vec!["alice@example.com".to_string()]);
    assert!(
        got[0].data.contains("Subject: first\r\n"),
        "{}",
        got[0].data
    );
    // lettre dot-stuffs the leading dot; the sink unstuffs it.
    assert!(
        got[0].data.contains("\r\n.leading dot\r\n"),
        "{}",
        got[0].data
    );
    assert!(got[0].data.ends_with("bye"), "{:?}", got[0].data);

    // The pooled connection is open now: stop must close it as well.
    sink.stop();
    assert!(TcpStream::connect(("127.0.0.1", sink.port())).is_err());
    assert!(
        mailer
            .send(test_message("lost", "nobody home"))
            .await
            .is_err(),
        "sending to a stopped sink must fail"
    );
    assert_eq!(sink.messages().len(), 1);

    sink.restart();
    mailer
        .send(test_message("second", "back again"))
        .await
        .expect("send after restart");
    let got = sink.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2);
    assert!(got[0].data.contains("Subject: first"));
    assert!(got[1].data.contains("Subject: second"));

    // The URL works as the application's SMTP_URL.
    let from_url = AsyncSmtpTransport::<Tokio1Executor>::from_url(&sink.url())
        .unwrap()
        .build();
    from_url
        .send(test_message("third", "via url"))
        .await
        .unwrap();
    assert_eq!(sink.wait_for(3, Duration::from_secs(5)).await.len(), 3);

    // Drop frees the port.
    let port = sink.port();
    drop(sink);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    TcpListener::bind(("127.0.0.1", port)).expect("port free after drop");
}

#[tokio::test]
async fn smtp_sink_speaks_the_protocol_on_concurrent_connections() {
    let sink = SmtpSink::start();
    let mut a = RawClient::connect(sink.port());
    let mut b = RawClient::connect(sink.port());
    assert_eq!(a.line(), "220 sink ESMTP\r\n");
    assert_eq!(b.line(), "220 sink ESMTP\r\n");

    // b is served while a is idle.
    assert_eq!(b.command("EHLO client\r\n"), "250-sink\r\n");
    assert_eq!(b.line(), "250 8BITMIME\r\n");
    assert!(b.command("STARTTLS\r\n").starts_with("502 "));
    assert!(b.command("AUTH PLAIN AGZvbwBiYXI=\r\n").starts_with("502 "));
    assert!(b.command("NOOP\r\n").starts_with("250 "));
    for (i, body) in ["one\r\n..dot\r\nend", "two"].iter().enumerate() {
        assert!(
            b.command("MAIL FROM:<x@example.com> BODY=8BITMIME\r\n")
                .starts_with("250 ")
        );
        assert!(b.command("RCPT TO:<y@example.com>\r\n").starts_with("250 "));
        assert!(b.command("RCPT TO:<z@example.com>\r\n").starts_with("250 "));
        assert!(b.command("DATA\r\n").starts_with("354 "));
        assert!(b.command(&format!("{body}\r\n.\r\n")).starts_with("250 "));
        assert_eq!(sink.messages().len(), i + 1);
    }
    assert!(
        b.command("MAIL FROM:<x@example.com>\r\n")
            .starts_with("250 ")
    );
    assert!(b.command("RSET\r\n").starts_with("250 "));
    assert!(b.command("DATA\r\n").starts_with("503 "));
    assert!(b.command("QUIT\r\n").starts_with("221 "));
    assert_eq!(b.line(), "", "closed after QUIT");

    assert_eq!(a.command("HELO old\r\n"), "250 sink\r\n");
    assert!(a.command("mail from:<>\r\n").starts_with("250 "));
    assert!(a.command("rcpt to:<w@example.com>\r\n").starts_with("250 "));
    assert!(a.command("data\r\n").starts_with("354 "));
    assert!(a.command(".\r\n").starts_with("250 "));

    // An oversized message is read to its end, refused, and the session goes on.
    assert!(
        a.command("MAIL FROM:<big@example.com>\r\n")
            .starts_with("250 ")
    );
    assert!(a.command("RCPT TO:<w@example.com>\r\n").starts_with("250 "));
    assert!(a.command("DATA\r\n").starts_with("354 "));
    let chunk = format!("{}\r\n", "x".repeat(998));
    let chunk = chunk.repeat(1024);
    for _ in 0..11 {
        a.send(&chunk);
    }
    assert!(a.command(".\r\n").starts_with("552 "));
    assert!(a.command("NOOP\r\n").starts_with("250 "));

    let got = sink.messages();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].from, "x@example.com");
    assert_eq!(got[0].to, vec!["y@example.com", "z@example.com"]);
    assert_eq!(got[0].data, "one\r\n.dot\r\nend");
    assert_eq!(got[1].data, "two");
    assert_eq!(got[2].from, "");
    assert_eq!(got[2].data, "");
}

#[tokio::test]
async fn smtp_sink_takes_parallel_lettre_sends() {
    let sink = SmtpSink::start();
    let mut tasks = Vec::new();
    for i in 0..5 {
        let mailer = transport(sink.port());
        tasks.push(tokio::spawn(async move {
            mailer
                .send(test_message(&format!("parallel {i}"), "hi"))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(sink.wait_for(5, Duration::from_secs(5)).await.len(), 5);
}

#[test]
fn smtp_sink_extract_link_decodes_quoted_printable_and_prefers_plain_text() {
    let data = "From: noreply@example.com\r\n\
        To: alice@example.com\r\n\
        Subject: Verify\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/alternative;\r\n boundary=\"XyZ\"\r\n\
        \r\n\
        --XyZ\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\
        \r\n\
        Hello,\r\n\
        open https://auth.example.com/verify-email?token=3DAbc123_def-456&n=\r\n\
        ext=3D%2Fhome to verify. See also https://auth.example.com/other?x=3D1\r\n\
        --XyZ\r\n\
        Content-Type: text/html; charset=utf-8\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\
        \r\n\
        <a href=3D\"https://auth.example.com/verify-email?token=3DAbc123_def-456&am=\r\n\
        p;next=3D%2Fhome\">verify</a>\r\n\
        --XyZ--\r\n";
    assert_eq!(
        extract_link(data, "/verify-email?token=").as_deref(),
        Some("https://auth.example.com/verify-email?token=Abc123_def-456&next=%2Fhome")
    );
    assert_eq!(
        extract_link(data, "/other").as_deref(),
        Some("https://auth.example.com/other?x=1")
    );
    assert_eq!(extract_link(data, "/reset-password?token="), None);

    // HTML only: entities are decoded.
    let html_only = "Content-Type: text/html\r\n\r\n\
        <a href=\"http://127.0.0.1:8080/verify-email?token=t1&amp;next=%2F\">go</a>";
    assert_eq!(
        extract_link(html_only, "/verify-email?token=").as_deref(),
        Some("http://127.0.0.1:8080/verify-email?token=t1&next=%2F")
    );
}

#[test]
fn smtp_sink_extract_link_decodes_base64_and_lettre_output() {
    let link = "https://auth.example.com/reset-password?token=Zm9vYmFyYmF6cXV4";
    let text = format!("Bonjour Élodie,\r\n\r\nréinitialisez : {link}\r\n");
    let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    let data = format!(
        "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n{}\r\n",
        &encoded[..40],
        &encoded[40..]
    );
    assert_eq!(
        extract_link(&data, "/reset-password?token=").as_deref(),
        Some(link)
    );

    // Whatever lettre picks for a long non-ASCII multipart mail, the link comes back.
    let long = format!(
        "https://auth.example.com/verify-email?token={}",
        "a1B2c3D4e5".repeat(12)
    );
    let text = format!("Grüße! Bitte bestätigen: {long}\r\n");
    let html = format!("<p>Grüße!</p><p><a href=\"{long}&amp;x=1\">bestätigen</a></p>");
    let message = Message::builder()
        .from("noreply@example.com".parse::<Address>().unwrap())
        .to("alice@example.com".parse::<Address>().unwrap())
        .subject("Bestätigen")
        .multipart(MultiPart::alternative_plain_html(text, html))
        .unwrap();
    let raw = String::from_utf8(message.formatted()).unwrap();
    assert_eq!(
        extract_link(&raw, "/verify-email?token=").as_deref(),
        Some(long.as_str())
    );
}
