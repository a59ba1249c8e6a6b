#!/usr/bin/env python3
"""Connection-holding attacks against a running moat, with what the client
saw and how long each attack held its slot.

    python3 tests/security/connection-attacks.py MOAT_BIN

Starts its own upstream (127.0.0.1, random port) and moat (MOAT_BIN) on a
config with small timeouts (header_read_timeout 2s, idle_timeout 5s,
send_timeout 3s, body_read_timeout 2s, body_timeout 6s), runs each attack
with a 20 s cap, and prints one line per attack. Only the Python standard
library and curl are used; everything stays on 127.0.0.1.
"""

import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import http.server
import socketserver

CAP = 20.0


# ------------------------------------------------------------------ upstream

class Up(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upgrades = []
    cancelled = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.headers.get("Upgrade"):
            Up.upgrades.append(self.headers.get("Upgrade"))
        if self.path.startswith("/big"):
            self.send_response(200)
            self.send_header("Content-Length", str(512 << 20))
            self.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range((512 << 20) // 65536):
                    self.wfile.write(chunk)
            except OSError:
                Up.cancelled.append(self.path)
            return
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0) or 0)
        try:
            while n > 0:
                b = self.rfile.read(min(n, 65536))
                if not b:
                    break
                n -= len(b)
        except OSError:
            pass
        try:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        except OSError:
            pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


# ------------------------------------------------------------------ helpers

def tls(port, alpn):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols([alpn])
    s = socket.create_connection(("127.0.0.1", port), timeout=CAP)
    return ctx.wrap_socket(s, server_hostname="localhost")


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def read_frames(s, until):
    """Reads frames until `until(kind, flags, stream, payload)` is true, the
    peer closes, or CAP passes. Answers PINGs. Returns (reason, seconds)."""
    t0 = time.monotonic()
    buf = b""
    s.settimeout(0.5)
    while time.monotonic() - t0 < CAP:
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return "closed", time.monotonic() - t0
        if not d:
            return "closed", time.monotonic() - t0
        buf += d
        while len(buf) >= 9:
            n = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + n:
                break
            kind, flags = buf[3], buf[4]
            stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            payload = buf[9:9 + n]
            buf = buf[9 + n:]
            if kind == 6 and not flags & 1:  # PING: answer it
                s.sendall(frame(6, 1, 0, payload))
            if kind == 7:
                return "GOAWAY", time.monotonic() - t0
            if until(kind, flags, stream, payload):
                return "stop", time.monotonic() - t0
    return "still open at cap", time.monotonic() - t0


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def hpack_get(path, authority):
    """A HEADERS block with literal fields (no indexing, no Huffman)."""
    def lit(name, value):
        return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
    return (b"\x82\x87" + lit(b":path", path.encode()) + lit(b":authority", authority.encode()))


# ------------------------------------------------------------------ attacks

def idle_h2(port):
    """No request ever; PINGs from both sides (the client sends one a second)."""
    s = tls(port, "h2")
    s.sendall(PREFACE + frame(4, 0, 0))
    stop = threading.Event()

    def pinger():
        while not stop.wait(1.0):
            try:
                s.sendall(frame(6, 0, 0, b"12345678"))
            except OSError:
                return
    threading.Thread(target=pinger, daemon=True).start()
    why, t = read_frames(s, lambda *a: False)
    stop.set()
    return f"{why} after {t:.1f}s"


def silent_h1(port):
    s = tls(port, "http/1.1")
    t0 = time.monotonic()
    s.settimeout(CAP)
    try:
        d = s.recv(1024)
        what = "closed" if not d else "answered " + d.split(b"\r\n")[0].decode()
    except socket.timeout:
        what = "still open at cap"
    except OSError:
        what = "closed"
    return f"{what} after {time.monotonic() - t0:.1f}s"


def zero_window_h2(port):
    s = tls(port, "h2")
    # SETTINGS_INITIAL_WINDOW_SIZE = 0: moat may send nothing on the stream.
    s.sendall(PREFACE + frame(4, 0, 0, struct.pack(">HI", 4, 0)))
    s.sendall(frame(1, 0x5, 1, hpack_get("/big?zero-window", "localhost")))
    why, t = read_frames(s, lambda k, f, st, p: k == 3 and st == 1)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and "/big?zero-window" not in Up.cancelled:
        time.sleep(0.05)
    cancelled = "/big?zero-window" in Up.cancelled
    s.close()
    return f"{'RST_STREAM' if why == 'stop' else why} after {t:.1f}s, upstream cancelled: {cancelled}"


def stalled_reader_h1(port):
    s = tls(port, "http/1.1")
    s.sendall(b"GET /big?stalled HTTP/1.1\r\nHost: localhost\r\n\r\n")
    s.recv(4096)
    t0 = time.monotonic()
    # Never read again; wait until moat gives up on the response.
    while time.monotonic() - t0 < CAP and "/big?stalled" not in Up.cancelled:
        time.sleep(0.1)
    held = time.monotonic() - t0
    s.close()
    if "/big?stalled" in Up.cancelled:
        return f"upstream request cancelled after {held:.1f}s"
    return f"still held at {held:.1f}s"


def trickled_body(port):
    s = tls(port, "http/1.1")
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n")
    t0 = time.monotonic()
    s.settimeout(0.1)
    while time.monotonic() - t0 < CAP:
        try:
            s.sendall(b"a")
        except OSError:
            break
        try:
            d = s.recv(1024)
            if d:
                first = d.split(b"\r\n")[0].decode()
                return f"answered {first} after {time.monotonic() - t0:.1f}s"
            break
        except socket.timeout:
            pass
        except OSError:
            break
        time.sleep(1.4)
    return f"closed or held: {time.monotonic() - t0:.1f}s"


def h2c_upgrade(port):
    before = len(Up.upgrades)
    s = tls(port, "http/1.1")
    s.sendall(b"GET /public HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n"
              b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    s.settimeout(5)
    try:
        head = s.recv(4096).split(b"\r\n")[0].decode()
    except OSError:
        head = "closed"
    return f"client saw {head!r}, upstream saw Upgrade: {len(Up.upgrades) > before}"


def ws_bad_origin(port):
    s = tls(port, "http/1.1")
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
              b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Origin: https://evil.example\r\n\r\n")
    s.settimeout(5)
    try:
        head = s.recv(4096).split(b"\r\n")[0].decode()
    except OSError:
        head = "closed"
    return f"client saw {head!r}"


def admin_starved(admin_port):
    conns = [socket.create_connection(("127.0.0.1", admin_port)) for _ in range(80)]
    time.sleep(0.5)
    t0 = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", admin_port), timeout=10)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        s.settimeout(10)
        head = s.recv(1024).split(b"\r\n")[0].decode() or "closed"
    except OSError as e:
        head = f"failed ({e.__class__.__name__})"
    for c in conns:
        c.close()
    return f"/healthz with 80 idle clients: {head!r} in {time.monotonic() - t0:.1f}s"


def bad_chunked(port, admin_port):
    def upstream_errors():
        try:
            with socket.create_connection(("127.0.0.1", admin_port), timeout=5) as a:
                a.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    data += d
            return sum(float(l.rsplit(b" ", 1)[1]) for l in data.splitlines()
                       if l.startswith(b"moat_upstream_errors_total{"))
        except OSError:
            return -1
    before = upstream_errors()
    s = tls(port, "http/1.1")
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
    s.settimeout(5)
    try:
        head = s.recv(4096).split(b"\r\n")[0].decode()
    except OSError:
        head = "closed"
    time.sleep(0.5)
    return f"client saw {head!r}, moat_upstream_errors_total +{upstream_errors() - before:g}"


def curl_early(port, size, path):
    with tempfile.NamedTemporaryFile() as f:
        f.write(b"x" * size)
        f.flush()
        r = subprocess.run(["curl", "-sk", "--http2", "-o", "/dev/null", "-w", "%{http_code}",
                            "--max-time", "60", "--data-binary", "@" + f.name,
                            f"https://127.0.0.1:{port}{path}"], capture_output=True, text=True)
    return f"curl exit {r.returncode}, status {r.stdout or '-'} {r.stderr.strip()}"


# ------------------------------------------------------------------ main

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    moat = sys.argv[1]
    up = Server(("127.0.0.1", 0), Up)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    https, admin = free_port(), free_port()
    cfg = f"""
[listen]
https = "127.0.0.1:{https}"
admin = "127.0.0.1:{admin}"
[upstream]
url = "http://127.0.0.1:{up.server_address[1]}"
response_timeout = "30m"
[limits]
header_read_timeout = "2s"
idle_timeout = "5s"
send_timeout = "3s"
body_read_timeout = "2s"
body_timeout = "6s"
[rate_limit]
default = "off"
[cors]
allowed_origins = ["https://ui.example.com"]
[auth]
default = "none"
api_keys = [{{ name = "k", sha256 = "{'0' * 64}" }}]
[[routes]]
name = "small"
path = "/small"
max_body = "1MiB"
[[routes]]
name = "ws"
path = "/ws"
websocket = true
[[routes]]
name = "keyed"
path = "/keyed"
auth = "api_key"
"""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "moat.toml")
        # Older versions do not know every key: drop the ones they refuse.
        for attempt in range(8):
            with open(path, "w") as f:
                f.write(cfg)
            r = subprocess.run([moat, "check", "--config", path], capture_output=True, text=True)
            bad = [l.split(": ")[1] for l in r.stderr.splitlines() if "unknown key" in l]
            if not bad:
                break
            for key in bad:
                name = key.split(".")[-1]
                cfg = "\n".join(l for l in cfg.splitlines() if not l.startswith(name + " "))
        env = dict(os.environ, MOAT_LOG="warn")
        p = subprocess.Popen([moat, "run", "--config", path], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", https), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            attacks = [
                ("idle HTTP/2 answering PINGs", lambda: idle_h2(https)),
                ("HTTP/1 silent after the handshake", lambda: silent_h1(https)),
                ("HTTP/2 zero window, 512 MiB download", lambda: zero_window_h2(https)),
                ("HTTP/1 client stops reading a 512 MiB download", lambda: stalled_reader_h1(https)),
                ("trickled body (1 byte / 1.4 s)", lambda: trickled_body(https)),
                ("Upgrade: h2c on a public path", lambda: h2c_upgrade(https)),
                ("WebSocket from a disallowed Origin (/ws)", lambda: ws_bad_origin(https)),
                ("admin listener, 80 idle clients", lambda: admin_starved(admin)),
                ("malformed chunked client body", lambda: bad_chunked(https, admin)),
                ("curl 7.88 HTTP/2, 2 MB to a 1 MiB route", lambda: curl_early(https, 2_000_000, "/small")),
                ("curl 7.88 HTTP/2, 100 MB to a 1 MiB route", lambda: curl_early(https, 100_000_000, "/small")),
                ("curl 7.88 HTTP/2, 2 MB without a key", lambda: curl_early(https, 2_000_000, "/keyed")),
            ]
            for name, run in attacks:
                try:
                    out = run()
                except Exception as e:  # report, keep going
                    out = f"error: {e!r}"
                print(f"{name:45} {out}", flush=True)
        finally:
            p.terminate()
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
