//! The standing adversarial suite (bounded part, run in CI): request
//! smuggling and framing tricks sent as raw bytes over TLS, path encodings
//! aimed at a protected route, HTTP/2 abuse with hand-written frames, and
//! upstream faults. Every case asserts what the client sees and what the
//! recording upstream received: never two requests where the client sent
//! one, never a request whose framing differs from what moat parsed, never
//! a protected path reached without credentials, never a hang.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use http::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn base(up: &Upstream, pki: &Pki, extra: &str) -> String {
    format!("{extra}[upstream]\nurl = \"{}\"\nresponse_timeout = \"3s\"\n{}", up.url(), pki.tls_toml())
}

/// The status codes of every response in a raw HTTP/1.1 byte stream.
fn statuses(raw: &str) -> Vec<u16> {
    raw.match_indices("HTTP/1.1 ").filter_map(|(i, _)| raw.get(i + 9..i + 12).and_then(|s| s.parse().ok())).collect()
}

// ---------------------------------------------------------------- framing

/// Each case: a request whose framing is ambiguous or invalid, written as
/// the client's exact bytes. Every one ends with a second, smuggled request
/// for `/smuggled`, which must never reach the upstream.
const FRAMING: &[(&str, &str)] = &[
    (
        "CL and TE together",
        "POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "TE and CL together (CL first in the body)",
        "POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "two different Content-Length",
        "POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "Content-Length list",
        "POST /a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0, 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "Transfer-Encoding xchunked",
        "POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "Transfer-Encoding chunked, identity",
        "POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "obs-folded Transfer-Encoding",
        "POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "Transfer-Encoding with a space before the colon",
        "POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "chunk size with a leading +",
        "POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "chunk size overflow",
        "POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "chunk size bad hex",
        "POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "chunk without its CRLF",
        "POST /a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "NUL in a header value",
        "GET /a HTTP/1.1\r\nHost: localhost\r\nX-A: a\0b\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "bare CR in a header value",
        "GET /a HTTP/1.1\r\nHost: localhost\r\nX-A: a\rContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "space before the colon",
        "GET /a HTTP/1.1\r\nHost : localhost\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "Host missing",
        "GET /a HTTP/1.1\r\nX-A: 1\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "Host doubled",
        "GET /a HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "authority-form target",
        "CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
    (
        "asterisk-form target",
        "OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ),
];

#[tokio::test]
async fn ambiguous_framing_is_refused_and_never_smuggles() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&base(&up, &pki, ""));
    let mut failures = Vec::new();
    for (i, (name, req)) in FRAMING.iter().enumerate() {
        // A path of its own per case, so late upstream records are not misattributed.
        let tag = format!("/case{i}");
        let req = req.replace(" /a HTTP/1.1", &format!(" {tag} HTTP/1.1"));
        let raw = raw_h1(&pki, &m, req.as_bytes(), Duration::from_secs(5)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let st = statuses(&raw);
        let seen: Vec<Seen> =
            up.seen().into_iter().filter(|s| s.uri.starts_with(&tag) || s.uri.contains("smuggled")).collect();
        let mut problems = Vec::new();
        if seen.iter().any(|s| s.uri.contains("smuggled")) {
            problems.push("the smuggled request reached the upstream".to_string());
            up.seen.lock().unwrap().retain(|s| !s.uri.contains("smuggled"));
        }
        if seen.len() > 1 {
            problems.push(format!("the upstream got {} requests for one", seen.len()));
        }
        // CL together with TE may be normalised instead (RFC 9112 §6.1): the
        // upstream then gets the chunked reading only, and the connection closes.
        let normalisable = name.contains("CL and TE") || name.contains("TE and CL");
        let normalised = normalisable
            && st == [200]
            && seen.len() == 1
            && seen[0].complete
            && seen[0].body_len == 0
            && !seen[0].headers.contains_key("content-length");
        // A request whose body turns out malformed may have started upstream; it must not arrive complete.
        if seen.iter().any(|s| s.complete) && !normalised {
            problems.push(format!("delivered complete as {:?}", seen.iter().map(|s| &s.uri).collect::<Vec<_>>()));
        }
        match st.first() {
            None => problems.push("no response at all".to_string()),
            Some(400 | 405 | 501) => {}
            Some(_) if normalised => {}
            Some(other) => problems.push(format!("answered {other}, not refused")),
        }
        if st.len() > 1 {
            problems.push(format!("the connection went on after a framing error: {st:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{name}: {}", problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "framing cases not refused cleanly:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn bare_lf_and_absolute_form_are_normalised() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&base(&up, &pki, ""));
    // Bare LF line endings: accepted as RFC 9112 allows, forwarded as one clean request.
    let raw =
        raw_h1(&pki, &m, b"GET /lf HTTP/1.1\nHost: localhost\nConnection: close\n\n", Duration::from_secs(5)).await;
    assert_eq!(statuses(&raw), vec![200], "{raw}");
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/lf");
    // Absolute-form: the upstream gets origin-form; the target's authority is not the app's host.
    let raw = raw_h1(
        &pki,
        &m,
        b"GET http://localhost/abs?q=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let st = statuses(&raw);
    assert!(st == vec![200] || st == vec![400], "{raw}");
    if st == vec![200] {
        let last = up.seen().last().cloned().unwrap();
        assert_eq!(last.uri, "/abs?q=1", "absolute-form forwarded as is");
    }
    // An absolute-form target naming another host cannot redirect the request.
    let before = up.seen().len();
    let raw = raw_h1(
        &pki,
        &m,
        b"GET http://evil.example/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let st = statuses(&raw);
    assert_eq!(st.len(), 1, "{raw}");
    for s in &up.seen()[before..] {
        // Origin-form upstream; one Host, the one moat used (RFC 9112 §3.2.2: the target's authority wins).
        assert_eq!(s.uri, "/x");
        assert_eq!(s.headers.get_all("host").iter().count(), 1);
    }
}

#[tokio::test]
async fn keep_alive_pipelining_stays_in_step() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&base(&up, &pki, ""));
    // Three pipelined requests, one with a body: three answers, three upstream requests, bodies intact.
    let req = "POST /p1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhelloGET /p2 HTTP/1.1\r\nHost: localhost\r\n\r\nPOST /p3 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let raw = raw_h1(&pki, &m, req.as_bytes(), Duration::from_secs(8)).await;
    assert_eq!(statuses(&raw), vec![200, 200, 200], "{raw}");
    let seen = up.seen();
    let uris: Vec<&str> = seen.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(uris, vec!["/p1", "/p2", "/p3"]);
    assert_eq!(seen[0].body_len, 5);
    assert_eq!(seen[1].body_len, 0);
    assert_eq!(seen[2].body_len, 3);
    assert!(seen.iter().all(|s| s.complete));
}

// ---------------------------------------------------------------- paths

/// How a permissive upstream router reads a path: percent-decoded (twice,
/// as some frameworks do), `;params` dropped per segment, backslashes as
/// slashes, empty and `.` segments dropped, `..` resolved, lowercased.
fn upstream_view(uri: &str) -> String {
    let path = uri.split('?').next().unwrap_or("");
    let once = percent_encoding::percent_decode_str(path).decode_utf8_lossy().into_owned();
    let twice = percent_encoding::percent_decode_str(&once).decode_utf8_lossy().into_owned();
    let mut out: Vec<String> = Vec::new();
    for seg in twice.replace('\\', "/").split('/') {
        let seg = seg.split(';').next().unwrap_or("");
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.to_ascii_lowercase()),
        }
    }
    format!("/{}", out.join("/"))
}

#[tokio::test]
async fn no_path_encoding_reaches_a_protected_route() {
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let key = "adversarial-test-key-0123456789";
    let digest = sha256_hex(key.as_bytes());
    let m = Moat::start(&format!(
        "deny_unmatched = true\n[listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{}[auth]\napi_keys = [{{ name = \"ops\", sha256 = \"{digest}\" }}]\n\
         [[routes]]\nname = \"public\"\npath = \"/public\"\nauth = \"none\"\n\
         [[routes]]\nname = \"item\"\npath = \"/items/{{id}}\"\nexact = true\nauth = \"none\"\nmethods = [\"GET\"]\n\
         [[routes]]\nname = \"admin\"\npath = \"/admin\"\nauth = \"api_key\"\n",
        base(&up, &pki, "")
    ));
    let attacks = [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2e/admin",
        "/public/.%2e/admin",
        "/public/%252e%252e/admin",
        "/public/..%2fadmin",
        "/public/..%252fadmin",
        "/public/..%5cadmin",
        "/public/..%255cadmin",
        "/public\\..\\admin",
        "/public/%c0%ae%c0%ae/admin",
        "/public/%e0%80%ae%e0%80%ae/admin",
        "/public/..;/admin",
        "/public;/../admin",
        "/public/%00/../admin",
        "/public/%2500/../admin",
        "//admin",
        "///admin/x",
        "/./admin",
        "/ADMIN",
        "/Admin/x",
        "/%61dmin",
        "/%2561dmin",
        "/admin;x",
        "/admin%3bx",
        "/admin%2f",
        "/admin%09",
        "/items//delete",
        "/items/1/../../admin",
        "/items/%2e%2e/admin",
    ];
    for a in attacks {
        let before = up.seen().len();
        let raw = raw_h1(
            &pki,
            &m,
            format!("GET {a} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        )
        .await;
        let st = statuses(&raw);
        assert_eq!(st.len(), 1, "{a}: {raw}");
        for s in &up.seen()[before..] {
            let view = upstream_view(&s.uri);
            assert!(
                !view.starts_with("/admin") || st[0] == 401,
                "{a}: forwarded as {} (an upstream reads {view}) without credentials, client got {st:?}",
                s.uri
            );
            assert!(s.headers.get("x-api-key").is_none());
        }
    }
    // The protected route itself still works with the key, and not without.
    let c = pki.client();
    assert_eq!(c.get(m.url("/admin/x")).send().await.unwrap().status(), 401);
    assert_eq!(c.get(m.url("/admin/x")).header("x-api-key", key).send().await.unwrap().status(), 200);
}

// ---------------------------------------------------------------- HTTP/2 frames

mod h2raw {
    //! A minimal HTTP/2 client writing frames by hand (RFC 9113), for
    //! requests the `h2` crate refuses to send. Header blocks use HPACK
    //! literals without indexing and without Huffman coding (RFC 7541 §6.2.2).

    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    pub const DATA: u8 = 0;
    pub const HEADERS: u8 = 1;
    pub const RST_STREAM: u8 = 3;
    pub const SETTINGS: u8 = 4;
    pub const PING: u8 = 6;
    pub const GOAWAY: u8 = 7;
    pub const WINDOW_UPDATE: u8 = 8;
    pub const CONTINUATION: u8 = 9;
    pub const END_STREAM: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const ACK: u8 = 0x1;

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn int(out: &mut Vec<u8>, prefix_bits: u8, first: u8, mut v: usize) {
        let max = (1usize << prefix_bits) - 1;
        if v < max {
            out.push(first | v as u8);
            return;
        }
        out.push(first | max as u8);
        v -= max;
        while v >= 128 {
            out.push((v % 128 + 128) as u8);
            v /= 128;
        }
        out.push(v as u8);
    }

    /// An HPACK block of literal fields.
    pub fn block(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in fields {
            out.push(0x00);
            int(&mut out, 7, 0, n.len());
            out.extend_from_slice(n.as_bytes());
            int(&mut out, 7, 0, v.len());
            out.extend_from_slice(v.as_bytes());
        }
        out
    }

    pub fn request(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut f = vec![(":method", method), (":scheme", "https"), (":authority", "localhost"), (":path", path)];
        f.extend_from_slice(extra);
        block(&f)
    }

    /// Connection preface plus an empty SETTINGS frame.
    pub fn preface() -> Vec<u8> {
        let mut p = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        p.extend(frame(SETTINGS, 0, 0, &[]));
        p
    }

    #[derive(Debug, Clone)]
    pub struct Frame {
        pub kind: u8,
        pub flags: u8,
        pub stream: u32,
        pub payload: Vec<u8>,
    }

    pub async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> Option<Frame> {
        let mut head = [0u8; 9];
        s.read_exact(&mut head).await.ok()?;
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.ok()?;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        Some(Frame { kind: head[3], flags: head[4], stream, payload })
    }

    /// Reads frames (acking SETTINGS) until `stop` says so, the peer closes,
    /// or `within` passes; returns every frame read.
    pub async fn read_until<S: AsyncRead + AsyncWrite + Unpin>(
        s: &mut S,
        within: std::time::Duration,
        mut stop: impl FnMut(&Frame) -> bool,
    ) -> (Vec<Frame>, bool) {
        let mut got = Vec::new();
        let mut closed = false;
        let _ = tokio::time::timeout(within, async {
            loop {
                match read_frame(s).await {
                    None => {
                        closed = true;
                        break;
                    }
                    Some(f) => {
                        if f.kind == SETTINGS && f.flags & ACK == 0 {
                            let _ = s.write_all(&frame(SETTINGS, ACK, 0, &[])).await;
                        }
                        let done = stop(&f);
                        got.push(f);
                        if done {
                            break;
                        }
                    }
                }
            }
        })
        .await;
        (got, closed)
    }

    /// The `:status` of a response HEADERS block when it is a static-table
    /// index (200, 204, 206, 304, 400, 404, 500), else `None`.
    pub fn indexed_status(block: &[u8]) -> Option<u16> {
        match block.first()? {
            0x88 => Some(200),
            0x89 => Some(204),
            0x8a => Some(206),
            0x8b => Some(304),
            0x8c => Some(400),
            0x8d => Some(404),
            0x8e => Some(500),
            _ => None,
        }
    }
}

async fn h2_connect(pki: &Pki, m: &Moat) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut cfg = (*pki.rustls_client()).clone();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(m.https).await.unwrap();
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(rustls_pki_types::ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    s.write_all(&h2raw::preface()).await.unwrap();
    s
}

/// The response to stream `id`: `Ok(status)` when a HEADERS frame with a
/// static-table status came, `Err(kind)` with the frame kind that ended it
/// (RST_STREAM or GOAWAY), or `Err(0)` on close / timeout.
async fn h2_outcome<S>(s: &mut S, id: u32) -> Result<Option<u16>, u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use h2raw::*;
    let (frames, _) = read_until(s, Duration::from_secs(5), |f| {
        (f.stream == id && (f.kind == HEADERS || f.kind == RST_STREAM)) || f.kind == GOAWAY
    })
    .await;
    match frames.last() {
        Some(f) if f.kind == HEADERS => Ok(indexed_status(&f.payload)),
        Some(f) => Err(f.kind),
        None => Err(0),
    }
}

#[tokio::test]
async fn h2_connection_specific_headers_and_length_mismatch_are_refused() {
    use h2raw::*;
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&base(&up, &pki, ""));
    let cases: &[(&str, Vec<(&str, &str)>)] = &[
        ("connection", vec![("connection", "keep-alive")]),
        ("transfer-encoding", vec![("transfer-encoding", "chunked")]),
        ("keep-alive", vec![("keep-alive", "timeout=5")]),
        ("upgrade", vec![("upgrade", "h2c")]),
        ("te other than trailers", vec![("te", "gzip")]),
        ("uppercase name", vec![("X-Upper", "1")]),
    ];
    for (name, extra) in cases {
        let mut s = h2_connect(&pki, &m).await;
        s.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &request("GET", "/h2", extra))).await.unwrap();
        let out = h2_outcome(&mut s, 1).await;
        assert!(
            matches!(out, Err(RST_STREAM) | Err(GOAWAY) | Ok(Some(400))),
            "{name}: expected a stream error or 400, got {out:?}"
        );
    }
    // content-length disagreeing with the DATA frames: never delivered complete.
    for (declared, sent) in [("10", &b"abc"[..]), ("2", &b"abcdef"[..])] {
        let mut s = h2_connect(&pki, &m).await;
        let before = up.seen().len();
        let h = request("POST", "/cl", &[("content-length", declared)]);
        s.write_all(&frame(HEADERS, END_HEADERS, 1, &h)).await.unwrap();
        s.write_all(&frame(DATA, END_STREAM, 1, sent)).await.unwrap();
        let out = h2_outcome(&mut s, 1).await;
        assert!(
            matches!(out, Err(RST_STREAM) | Err(GOAWAY) | Ok(Some(400))),
            "content-length {declared} with {} bytes: {out:?}",
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        for seen in &up.seen()[before..] {
            assert!(!seen.complete || seen.body_len.to_string() == declared, "mismatched body delivered: {seen:?}");
        }
    }
    // The server still serves well-formed requests afterwards.
    let mut s = h2_connect(&pki, &m).await;
    s.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &request("GET", "/fine", &[]))).await.unwrap();
    assert_eq!(h2_outcome(&mut s, 1).await, Ok(Some(200)));
}

/// A well-formed h2 GET through a new connection: Ok(200) while moat serves.
async fn h2_probe(pki: &Pki, m: &Moat) -> Result<Option<u16>, u8> {
    use h2raw::*;
    let mut s = h2_connect(pki, m).await;
    s.write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &request("GET", "/probe", &[]))).await.unwrap();
    h2_outcome(&mut s, 1).await
}

async fn wait_goaway_or_close<S>(s: &mut S, within: Duration) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (frames, closed) = h2raw::read_until(s, within, |f| f.kind == h2raw::GOAWAY).await;
    closed || frames.iter().any(|f| f.kind == h2raw::GOAWAY)
}

#[tokio::test]
async fn h2_rapid_reset_is_cut_and_others_served() {
    use h2raw::*;
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::start(handler(|_, _| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Response::new(full("slow"))
    }))
    .await;
    let m = Moat::start(&base(&up, &pki, ""));
    let rss_before = m.rss_kib();
    let mut s = h2_connect(&pki, &m).await;
    // CVE-2023-44487: open and reset streams as fast as possible.
    let mut burst = Vec::new();
    for i in 0..5000u32 {
        let id = 1 + 2 * i;
        burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &request("GET", "/rr", &[])));
        burst.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), s.write_all(&burst)).await;
    assert!(wait_goaway_or_close(&mut s, Duration::from_secs(10)).await, "rapid reset not answered with GOAWAY");
    assert_eq!(h2_probe(&pki, &m).await, Ok(Some(200)), "another client was not served");
    // The upstream was not made to serve thousands of requests nobody waits for.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heads = up.heads.load(Ordering::SeqCst);
    assert!(heads < 1000, "{heads} upstream requests from one reset burst");
    let grown = m.rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
}

#[tokio::test]
async fn h2_continuation_flood_and_huge_header_lists_are_cut() {
    use h2raw::*;
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&base(&up, &pki, ""));
    let rss_before = m.rss_kib();
    // CONTINUATION flood: a header block that never ends.
    let mut s = h2_connect(&pki, &m).await;
    s.write_all(&frame(HEADERS, 0, 1, &request("GET", "/cont", &[]))).await.unwrap();
    let filler = block(&[("x-filler", &"a".repeat(4000))]);
    let flood = async {
        for _ in 0..20_000 {
            if s.write_all(&frame(CONTINUATION, 0, 1, &filler)).await.is_err() {
                return true;
            }
        }
        false
    };
    let cut = tokio::time::timeout(Duration::from_secs(20), flood).await;
    // Either the writes failed (connection closed) or GOAWAY is waiting to be read.
    let cut = matches!(cut, Ok(true)) || wait_goaway_or_close(&mut s, Duration::from_secs(5)).await;
    assert!(cut, "CONTINUATION flood (80 MB of headers) was not cut");
    drop(s);
    // One huge header list in one block.
    let mut s = h2_connect(&pki, &m).await;
    let many: Vec<(String, String)> = (0..2000).map(|i| (format!("x-h{i}"), "v".repeat(64))).collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let big = request("GET", "/big", &refs);
    let mut written = Vec::new();
    let mut chunks = big.chunks(16_000).peekable();
    let mut first = true;
    while let Some(c) = chunks.next() {
        let end = if chunks.peek().is_none() { END_HEADERS } else { 0 };
        let kind = if first { HEADERS } else { CONTINUATION };
        let flags = end | if first { END_STREAM } else { 0 };
        written.extend(frame(kind, flags, 1, c));
        first = false;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), s.write_all(&written)).await;
    let out = h2_outcome(&mut s, 1).await;
    assert!(!matches!(out, Ok(Some(200))), "a 260 KB header list was served: {out:?}");
    assert!(up.seen().iter().all(|x| x.uri != "/big"), "the huge header list reached the upstream");
    assert_eq!(h2_probe(&pki, &m).await, Ok(Some(200)));
    let grown = m.rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
}

#[tokio::test]
async fn h2_control_frame_floods_leave_others_served() {
    use h2raw::*;
    init_crypto();
    let pki = Pki::new();
    let up = Upstream::ok().await;
    let m = Moat::start(&base(&up, &pki, ""));
    let rss_before = m.rss_kib();
    let floods: Vec<(&str, Vec<u8>)> = vec![
        ("PING", frame(PING, 0, 0, &[7; 8])),
        ("SETTINGS", frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100])),
        ("WINDOW_UPDATE", frame(WINDOW_UPDATE, 0, 0, &1u32.to_be_bytes())),
    ];
    for (name, f) in floods {
        let mut s = h2_connect(&pki, &m).await;
        let burst: Vec<u8> = std::iter::repeat_n(f, 100_000).flatten().collect();
        // The client never reads: a server that queues an answer per frame would grow.
        let _ = tokio::time::timeout(Duration::from_secs(10), s.write_all(&burst)).await;
        assert_eq!(h2_probe(&pki, &m).await, Ok(Some(200)), "{name} flood: another client was not served");
        drop(s);
    }
    // Empty DATA frames on an open stream.
    let mut s = h2_connect(&pki, &m).await;
    s.write_all(&frame(HEADERS, END_HEADERS, 1, &request("POST", "/empty", &[]))).await.unwrap();
    let burst: Vec<u8> = std::iter::repeat_n(frame(DATA, 0, 1, &[]), 100_000).flatten().collect();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.write_all(&burst)).await;
    assert_eq!(h2_probe(&pki, &m).await, Ok(Some(200)), "empty-DATA flood: another client was not served");
    drop(s);
    let grown = m.rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");
}

#[tokio::test]
async fn h2_streams_beyond_the_limit_are_refused() {
    use h2raw::*;
    init_crypto();
    let pki = Pki::new();
    let release = Arc::new(tokio::sync::Notify::new());
    let r2 = release.clone();
    let up = Upstream::start(handler(move |_, _| {
        let r = r2.clone();
        async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), r.notified()).await;
            Response::new(full("held"))
        }
    }))
    .await;
    let m = Moat::start(&base(&up, &pki, "")); // default h2 stream limit
    let mut s = h2_connect(&pki, &m).await;
    // Learn the advertised limit from the server's SETTINGS.
    let (frames, _) = read_until(&mut s, Duration::from_secs(5), |f| f.kind == SETTINGS && f.flags & ACK == 0).await;
    let settings = frames.iter().find(|f| f.kind == SETTINGS && f.flags & ACK == 0).cloned().unwrap();
    let limit = settings
        .payload
        .chunks(6)
        .find(|c| c[..2] == [0, 3])
        .map(|c| u32::from_be_bytes([c[2], c[3], c[4], c[5]]))
        .expect("SETTINGS_MAX_CONCURRENT_STREAMS advertised");
    let n = limit + 20;
    let mut burst = Vec::new();
    for i in 0..n {
        burst.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, &request("GET", "/held", &[])));
    }
    s.write_all(&burst).await.unwrap();
    let (frames, _) = read_until(&mut s, Duration::from_secs(3), |f| f.kind == GOAWAY).await;
    let refused = frames.iter().filter(|f| f.kind == RST_STREAM).count();
    let goaway = frames.iter().any(|f| f.kind == GOAWAY);
    assert!(refused >= 20 || goaway, "{n} streams over a limit of {limit}: {refused} refused, goaway {goaway}");
    release.notify_waiters();
    assert!(up.heads.load(Ordering::SeqCst) <= limit as usize);
}

// ---------------------------------------------------------------- upstream faults

/// A raw TCP upstream: every connection is handed to `f`.
async fn raw_upstream<F, Fut>(f: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let c2 = conns.clone();
    let f = Arc::new(f);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            c2.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(f(tcp));
        }
    });
    (format!("http://{addr}"), conns)
}

async fn read_head(tcp: &mut tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut b).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
}

fn moat_for(url: &str, pki: &Pki) -> Moat {
    Moat::start(&format!(
        "[upstream]\nurl = \"{url}\"\nresponse_timeout = \"2s\"\nconnect_timeout = \"1s\"\n{}",
        pki.tls_toml()
    ))
}

fn assert_clean_problem(status: u16, body: &str, port_hint: &str) {
    assert!(body.contains("\"status\""), "not problem+json: {body}");
    assert!(body.contains(&status.to_string()), "{body}");
    for leak in ["127.0.0.1", port_hint, "hyper", "error trying", "Connection", "os error", "garbage"] {
        assert!(!body.contains(leak), "leak {leak:?} in {body}");
    }
}

#[tokio::test]
async fn upstream_faults_are_answered_cleanly() {
    init_crypto();
    let pki = Pki::new();
    let c = pki.client();

    // Refusing: nothing listens.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_port = dead.local_addr().unwrap().port().to_string();
    drop(dead);
    let m = moat_for(&format!("http://127.0.0.1:{dead_port}"), &pki);
    let r = c.get(m.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_clean_problem(502, &r.text().await.unwrap(), &dead_port);
    drop(m);

    // Garbage instead of HTTP.
    let (url, _) = raw_upstream(|mut tcp| async move {
        read_head(&mut tcp).await;
        let _ = tcp.write_all(b"garbage garbage garbage\r\n\r\n").await;
    })
    .await;
    let m = moat_for(&url, &pki);
    let r = c.get(m.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_clean_problem(502, &r.text().await.unwrap(), url.rsplit(':').next().unwrap());
    drop(m);

    // Hanging: accepts, reads, never answers → 504 within the response timeout.
    let (url, _) = raw_upstream(|mut tcp| async move {
        read_head(&mut tcp).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let m = moat_for(&url, &pki);
    let r = tokio::time::timeout(Duration::from_secs(15), c.get(m.url("/x")).send()).await.unwrap().unwrap();
    assert_eq!(r.status(), 504);
    assert_clean_problem(504, &r.text().await.unwrap(), url.rsplit(':').next().unwrap());
    drop(m);

    // Closing right after the headers (declared length never sent): the
    // client's body fails, it does not hang and does not get a short body as complete.
    let (url, _) = raw_upstream(|mut tcp| async move {
        read_head(&mut tcp).await;
        let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial").await;
    })
    .await;
    let m = moat_for(&url, &pki);
    let r = c.get(m.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(10), r.bytes()).await.unwrap();
    assert!(body.is_err() || body.as_ref().is_ok_and(|b| b.len() < 100_000), "truncated body delivered as complete");
    assert!(body.is_err(), "a truncated upstream body ended cleanly at the client");
    drop(m);

    // Reset in the middle of a chunked response.
    let (url, _) = raw_upstream(|mut tcp| async move {
        read_head(&mut tcp).await;
        let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Zero linger: close with a RST (never blocks on drop with a zero timeout).
        #[allow(deprecated)]
        let _ = tcp.set_linger(Some(Duration::ZERO));
        drop(tcp);
    })
    .await;
    let m = moat_for(&url, &pki);
    for h2 in [false, true] {
        let cl = if h2 {
            pki.builder().http2_prior_knowledge().build().unwrap()
        } else {
            pki.builder().http1_only().build().unwrap()
        };
        let r = cl.get(m.url("/x")).send().await.unwrap();
        let body = tokio::time::timeout(Duration::from_secs(10), r.bytes()).await.expect("client hung");
        assert!(body.is_err(), "h2={h2}: a reset upstream body ended cleanly at the client");
    }
    drop(m);
}

#[tokio::test]
async fn client_leaving_stops_a_large_upstream_body_and_the_pool_recovers() {
    init_crypto();
    let pki = Pki::new();
    let sent = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let (s2, d2) = (sent.clone(), done.clone());
    let (url, _) = raw_upstream(move |mut tcp| {
        let (sent, done) = (s2.clone(), d2.clone());
        async move {
            read_head(&mut tcp).await;
            let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n").await;
            let chunk = vec![b'z'; 64 * 1024];
            for _ in 0..16384 {
                match tokio::time::timeout(Duration::from_secs(5), tcp.write_all(&chunk)).await {
                    Ok(Ok(())) => {
                        sent.fetch_add(chunk.len(), Ordering::SeqCst);
                    }
                    _ => break,
                }
            }
            done.notify_waiters();
        }
    })
    .await;
    let m = moat_for(&url, &pki);
    let c = pki.client();
    let mut r = c.get(m.url("/big")).send().await.unwrap();
    let first = r.chunk().await.unwrap();
    assert!(first.is_some());
    drop(r);
    drop(c);
    // The upstream's writes stop (moat dropped its side) well before 1 GiB.
    let stopped = tokio::time::timeout(Duration::from_secs(20), done.notified()).await;
    assert!(stopped.is_ok(), "moat kept reading the upstream after the client left");
    assert!(
        sent.load(Ordering::SeqCst) < 512 * 1024 * 1024,
        "{} bytes read after the client left",
        sent.load(Ordering::SeqCst)
    );

    // Upstream down, then back on the same port: 502, then 200 again.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let up = Upstream::serve(l, handler(|_, _| async { Response::new(full("back")) }));
    let m = moat_for(&format!("http://{addr}"), &pki);
    let c = pki.client();
    assert_eq!(c.get(m.url("/a")).send().await.unwrap().status(), 200);
    up.stop();
    drop(up);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = c.get(m.url("/a")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let mut l = None;
    for _ in 0..50 {
        if let Ok(x) = tokio::net::TcpListener::bind(addr).await {
            l = Some(x);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _up = Upstream::serve(l.expect("port free again"), handler(|_, _| async { Response::new(full("back")) }));
    let mut ok = false;
    for _ in 0..3 {
        let r = c.get(m.url("/a")).send().await.unwrap();
        if r.status() == 200 && r.text().await.unwrap() == "back" {
            ok = true;
            break;
        }
    }
    assert!(ok, "the pool did not recover when the upstream came back");
}
