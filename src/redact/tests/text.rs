//! Tests of free-text redaction: a table of leak samples that must lose
//! their secrets, harmless text that must come back borrowed, idempotence,
//! every rule firing, and large inputs.

use std::borrow::Cow;

use super::super::rules::{LONG_TOKEN_RULE, RULES};
use super::super::REDACTED;
use super::{apply_rule, redact_text, COMPILED, LONG_TOKEN, PRECHECK};

/// (input, substrings that must be gone after redaction)
const LEAKS: &[(&str, &[&str])] = &[
    // 0: full Python traceback
    (
        "Traceback (most recent call last):\n  File \"/usr/lib/python3.11/site-packages/starlette/routing.py\", line 677, in __call__\n    await route.handle(scope, receive, send)\n  File \"/app/src/tasks/service.py\", line 42, in get_task\n    row = await db.fetch_one(query)\nasyncpg.exceptions.UndefinedTableError: relation \"tasks\" does not exist",
        &["Traceback", "/usr/lib/python3.11", "service.py", "fetch_one", "UndefinedTableError", "relation"],
    ),
    // 1: chained Python traceback
    (
        "Traceback (most recent call last):\n  File \"/app/db.py\", line 9, in connect\n    sock.connect(addr)\nConnectionRefusedError: [Errno 111] Connection refused\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"/app/main.py\", line 20, in startup\n    await connect()\nRuntimeError: database unavailable",
        &["Traceback", "/app/db.py", "sock.connect", "During handling", "/app/main.py", "RuntimeError"],
    ),
    // 2: lone Python frame
    (
        "error near File \"/opt/service/handlers/upload.py\", line 88, in store_file",
        &["upload.py", "line 88", "store_file"],
    ),
    // 3: HTML-escaped Python frame
    (
        "<p>File &quot;/srv/www/app/views.py&quot;, line 12, in index</p>",
        &["views.py", "line 12"],
    ),
    // 4: Go panic with goroutine dump
    (
        "panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x6f2a1c]\n\ngoroutine 34 [running]:\nmain.(*TaskHandler).Get(0xc0001b4000, 0xc0003a6000)\n\t/go/src/app/handlers/tasks.go:42 +0x1dc\ngithub.com/gin-gonic/gin.(*Context).Next(...)\n\t/go/pkg/mod/github.com/gin-gonic/gin@v1.9.1/context.go:174\ncreated by net/http.(*Server).Serve in goroutine 1\n\t/usr/local/go/src/net/http/server.go:3086 +0x5cb\nexit status 2",
        &["panic", "goroutine", "TaskHandler", "tasks.go", "gin-gonic", "net/http", "exit status"],
    ),
    // 5: goroutine dump alone
    (
        "goroutine 17 [IO wait]:\nnet/http.(*conn).serve(0xc0001a2000, {0x8b4f10, 0xc00019e000})\n\t/usr/local/go/src/net/http/server.go:2009 +0x5f4",
        &["goroutine 17", "conn", "server.go", "+0x5f4"],
    ),
    // 6: lone Go frame
    (
        "failed in main.handler(0xc000010000, 0x0) while serving",
        &["main.handler", "0xc000010000"],
    ),
    // 7: Go file:line +offset
    (
        "at\t/go/src/app/main.go:42 +0x1d in worker",
        &["/go/src/app", "main.go", "+0x1d"],
    ),
    // 8: runtime/debug.Stack
    (
        "stack from runtime/debug.Stack() attached",
        &["runtime/debug"],
    ),
    // 9: created by
    (
        "created by net/http.(*Server).Serve in goroutine 1",
        &["net/http", "Serve"],
    ),
    // 10: Gin recovery frames
    (
        "runtime error: index out of range [3] with length 3\n/go/src/app/handlers.go:55 (0x8f1e2a)\n\thandler: return items[3]\n/usr/local/go/src/runtime/panic.go:114 (0x43b5d4)\n\tgoPanicIndex: panic(boundsError{x: int64(x)})",
        &["handlers.go", "return items", "panic.go", "goPanicIndex"],
    ),
    // 11: Java trace with Caused by and ... more
    (
        "java.lang.IllegalStateException: upstream failed\n\tat com.example.tasks.TaskService.load(TaskService.java:42)\n\tat com.example.tasks.TaskController.get(TaskController.java:17)\nCaused by: java.sql.SQLException: Access denied\n\tat org.postgresql.Driver.connect(Driver.java:285)\n\t... 12 more",
        &["IllegalStateException", "TaskService", "Caused by", "SQLException", "Driver.java", "12 more"],
    ),
    // 12: single Java frame
    (
        "\tat com.example.Foo.bar(Foo.java:42)",
        &["com.example", "Foo.java"],
    ),
    // 13: Caused by alone
    (
        "Caused by: java.net.ConnectException: Connection refused",
        &["Caused by", "ConnectException"],
    ),
    // 14: Node.js trace
    (
        "TypeError: Cannot read properties of undefined (reading 'id')\n    at getTask (/app/src/routes/tasks.js:10:5)\n    at async Promise.all (index 0)\n    at /app/node_modules/express/lib/router/layer.js:95:5",
        &["TypeError", "getTask", "tasks.js", "Promise.all", "node_modules"],
    ),
    // 15: Rust panic with backtrace
    (
        "thread 'main' panicked at src/main.rs:10:5:\ncalled `Option::unwrap()` on a `None` value\nstack backtrace:\n   0: std::panicking::begin_panic_handler\n             at /rustc/129f3b9964af4d4a709d1383930ade12dfe7c081/library/std/src/panicking.rs:645:5\n   1: myapp::main\n             at ./src/main.rs:10:5\nnote: Some details are omitted, run with `RUST_BACKTRACE=full` for a verbose backtrace.",
        &["panicked", "src/main.rs", "Option::unwrap", "begin_panic_handler", "/rustc/", "myapp::main", "RUST_BACKTRACE"],
    ),
    // 16: Rust old-format panic line
    (
        "thread 'tokio-runtime-worker' panicked at 'index out of bounds', src/handlers.rs:42:18\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
        &["tokio-runtime-worker", "handlers.rs", "RUST_BACKTRACE"],
    ),
    // 17: lone Rust backtrace frames
    (
        "  12: tokio::runtime::task::harness::poll_future\n             at /usr/local/cargo/registry/src/tokio-1.38.0/src/runtime/task/harness.rs:473:19",
        &["tokio::runtime", "harness.rs"],
    ),
    // 18: Windows path
    (
        "cannot read C:\\Users\\alice\\AppData\\Local\\app\\config.yaml: access denied",
        &["alice", "AppData", "config.yaml"],
    ),
    // 19: Windows path with spaces and forward slashes
    (
        "loaded C:/Program Files/Acme App/bin/acme.exe ok",
        &["Program Files", "Acme App", "acme.exe"],
    ),
    // 20: UNC path
    (
        "share \\\\fileserver\\finance\\reports\\q3.xlsx is offline",
        &["fileserver", "finance", "q3.xlsx"],
    ),
    // 21: /home path
    (
        "open /home/deploy/.config/app/settings.json: permission denied",
        &["/home/deploy", "settings.json"],
    ),
    // 22: /etc path
    (
        "could not parse /etc/nginx/nginx.conf",
        &["/etc/nginx", "nginx.conf"],
    ),
    // 23: /var path with line number
    (
        "error at /var/lib/app/worker.py:120",
        &["/var/lib", "worker.py", ":120"],
    ),
    // 24: unknown root, sensitive extension
    (
        "missing /data/app/secrets.env",
        &["/data/app", "secrets.env"],
    ),
    // 25: tilde path
    (
        "read ~/.aws/credentials failed",
        &[".aws", "credentials"],
    ),
    // 26: 10/8 with port
    (
        "upstream 10.0.3.7:9000 timed out",
        &["10.0.3.7", "9000"],
    ),
    // 27: 172.16/12
    (
        "peer 172.20.14.3 reset the connection",
        &["172.20.14.3"],
    ),
    // 28: 192.168/16
    (
        "gateway 192.168.1.254 unreachable",
        &["192.168.1.254"],
    ),
    // 29: loopback
    (
        "listening on 127.0.0.1:8080",
        &["127.0.0.1", "8080"],
    ),
    // 30: link-local metadata address
    (
        "GET http-metadata 169.254.169.254 failed",
        &["169.254.169.254"],
    ),
    // 31: CGNAT
    (
        "tailnet peer 100.101.7.9 offline",
        &["100.101.7.9"],
    ),
    // 32: unspecified
    (
        "bound to 0.0.0.0:8000",
        &["0.0.0.0", "8000"],
    ),
    // 33: IPv6 loopback bracketed with port
    (
        "dial tcp [::1]:5432: connect: connection refused",
        &["::1", "5432"],
    ),
    // 34: IPv6 unique-local
    (
        "route via fd12:3456:789a::1 failed",
        &["fd12:3456:789a::1"],
    ),
    // 35: IPv6 link-local with zone
    (
        "neighbor fe80::1ff:fe23:4567:890a%eth0 lost",
        &["fe80::1ff", "eth0"],
    ),
    // 36: IPv4-mapped IPv6
    (
        "client ::ffff:10.1.2.3 rejected",
        &["ffff", "10.1.2.3"],
    ),
    // 37: svc.cluster.local host:port
    (
        "connect to postgres.db.svc.cluster.local:5432 failed",
        &["postgres.db", "cluster.local", "5432"],
    ),
    // 38: *.svc host
    (
        "resolve minio.storage.svc failed",
        &["minio.storage"],
    ),
    // 39: *.internal
    (
        "host ip-10-0-1-17.ec2.internal refused",
        &["ip-10-0-1-17", "ec2.internal"],
    ),
    // 40: *.local
    (
        "printer at printer.office.local:631 is busy",
        &["printer.office", ":631"],
    ),
    // 41: *.lan
    (
        "backup on nas.lan:5000 failed",
        &["nas.lan", "5000"],
    ),
    // 42: localhost with port
    (
        "connection refused: localhost:6379",
        &["localhost", "6379"],
    ),
    // 43: internal host inside a URL
    (
        "PUT http://minio.default.svc:9000/bucket/key.bin failed",
        &["minio", "default.svc", "9000", "bucket"],
    ),
    // 44: private IP inside a URL
    (
        "GET http://10.0.3.7:8080/healthz returned 503",
        &["10.0.3.7", "healthz"],
    ),
    // 45: single-label host URL
    (
        "cannot reach http://inventory:8000/api/items.",
        &["inventory", "8000"],
    ),
    // 46: redis URL with password only
    (
        "redis error: redis://:s3cr3tpass@cache:6379/0 down",
        &["s3cr3tpass", "cache:6379"],
    ),
    // 47: postgres URL with credentials on a public-looking host
    (
        "DATABASE_URL=postgres://app:hunter2@db.prod.example.com:5432/app",
        &["hunter2", "db.prod.example.com"],
    ),
    // 48: amqp URL
    (
        "amqp://guest:guestpw@rabbitmq.example.net/vhost unreachable",
        &["guestpw", "rabbitmq"],
    ),
    // 49: https URL with credentials
    (
        "fetch https://user:pa55word@api.example.com/v1/items failed",
        &["pa55word", "user:"],
    ),
    // 50: mongodb+srv URL
    (
        "mongodb+srv://admin:Pw123xyz@cluster0.example.net/db?retryWrites=true",
        &["Pw123xyz", "cluster0"],
    ),
    // 51: s3 URL with credentials
    (
        "s3://AKIDEXAMPLE:wJalrXUtnFEMI@bucket/backups",
        &["wJalrXUtnFEMI", "bucket/backups"],
    ),
    // 52: file URL
    (
        "loaded file:///etc/app/config.toml",
        &["/etc/app", "config.toml"],
    ),
    // 53: Bearer token
    (
        "rejected header Bearer 9f8e7d6c5b4a.token-value_123",
        &["9f8e7d6c5b4a", "token-value_123"],
    ),
    // 54: Basic credentials
    (
        "sent Basic dXNlcjpwYXNzd29yZA== to upstream",
        &["dXNlcjpwYXNzd29yZA"],
    ),
    // 55: JWT
    (
        "invalid jwt eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U given",
        &["eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "dozjgNryP4J3jVmNHl0w5N"],
    ),
    // 56: AWS access key id
    (
        "credentials for AKIAIOSFODNN7EXAMPLE expired",
        &["AKIAIOSFODNN7EXAMPLE"],
    ),
    // 57: AWS secret access key
    (
        "aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        &["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
    ),
    // 58: OpenAI project key
    (
        "openai error with sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv",
        &["sk-proj-", "Ab3dEf6hIj9kLm2nOp5qRs8tUv"],
    ),
    // 59: classic sk- key
    (
        "key sk-abc123def456ghi789jkl0 rejected",
        &["sk-abc123def456ghi789jkl0"],
    ),
    // 60: GitHub classic token
    (
        "push failed with ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        &["ghp_16C7e42F292c6912E7710c838347Ae178B4a"],
    ),
    // 61: GitHub fine-grained token
    (
        "token github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv revoked",
        &["github_pat_11ABCDEFG0123456789"],
    ),
    // 62: Slack bot token
    (
        "slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp denied",
        &["xoxb-123456789012"],
    ),
    // 63: GitLab token
    (
        "gitlab glpat-xY9zAbCdEfGhIjKlMnOp invalid",
        &["glpat-xY9zAbCdEfGhIjKlMnOp"],
    ),
    // 64: password=
    (
        "login failed for user=bob password=hunter2 at gate",
        &["hunter2"],
    ),
    // 65: JSON-ish password inside text
    (
        "payload {\"username\": \"bob\", \"password\": \"hunter2\"} rejected",
        &["hunter2"],
    ),
    // 66: Python dict repr api_key
    (
        "settings {'api_key': 'abcd1234efgh', 'debug': True}",
        &["abcd1234efgh"],
    ),
    // 67: env-style with prefix
    (
        "DB_PASSWORD=Sup3rS3cret! loaded",
        &["Sup3rS3cret"],
    ),
    // 68: colon form with digits
    (
        "secret: s3cr3t-value",
        &["s3cr3t-value"],
    ),
    // 69: access_key=
    (
        "minio access_key=minioadmin99 rejected",
        &["minioadmin99"],
    ),
    // 70: token in a public URL query
    (
        "callback https://api.example.com/cb?token=abc123xyz&state=1 failed",
        &["abc123xyz"],
    ),
    // 71: 40-hex token
    (
        "session id 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b not found",
        &["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"],
    ),
    // 72: sha256-length hex (redacted by choice)
    (
        "digest 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 mismatch",
        &["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    ),
    // 73: long base64 token
    (
        "cookie value dGhpcyBpcyBhIHNlY3JldCB2YWx1ZTEyMw9X2kQ leaked",
        &["dGhpcyBpcyBhIHNlY3JldCB2YWx1ZTEyMw9X2kQ"],
    ),
    // 74: PEM private key
    (
        "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq98Ux3tG1Zp+3kL\nQ2hvY29sYXRl\n-----END RSA PRIVATE KEY-----\nend",
        &["BEGIN RSA", "MIIEowIBAAKCAQEA7bq98Ux3tG1Zp", "END RSA"],
    ),
    // 75: Authorization header line
    (
        "GET /api/v1/tasks HTTP/1.1\nAuthorization: Token 0a1b2c3d\nAccept: */*",
        &["0a1b2c3d"],
    ),
    // 76: Cookie header line
    (
        "Host: api\nCookie: sid=s%3Aabc.def; theme=dark",
        &["s%3Aabc", "theme=dark"],
    ),
    // 77: well-known DB port on a bare host
    (
        "dial tcp db:5432: connect: connection refused",
        &["db:5432"],
    ),
    // 78: Exception in thread header
    (
        "Exception in thread \"main\" java.lang.NullPointerException: boom\n\tat com.example.Main.main(Main.java:5)",
        &["NullPointerException", "Main.java"],
    ),
];

/// Inputs that must come back byte-identical.
const HARMLESS: &[&str] = &[
    "File not found",
    "Invalid page number",
    "Rate limit exceeded",
    "The field 'file' is required",
    "See https://docs.example.com/guide/install for details",
    "Reported at https://github.com/owner/repo/issues/12",
    "Read https://example.com/docs/api first.",
    "Upgrade to v1.2.3",
    "Python 3.11.7",
    "built with go1.22.4",
    "Created at 2026-11-23T12:41:20Z",
    "task 123e4567-e89b-12d3-a456-426614174000 not found",
    "TASK 123E4567-E89B-12D3-A456-426614174000 NOT FOUND",
    "upstream 8.8.8.8 is unreachable",
    "Page 3 of 12",
    "{\"detail\":\"Not Found\"}",
    "field required",
    "value is not a valid integer",
    "GET /api/v1/tasks/{id} returned 404",
    "Unsupported media type: application/pdf",
    "Method Not Allowed",
    "Invalid token",
    "token: expired",
    "password: Field required",
    "Use Bearer authentication",
    "Basic authentication required",
    "Timeout after 30 seconds at 12:41:20",
    "The value must be at least 8 characters (a-z)",
    "Retry-After: 120",
    "Internal Server Error",
    "This is a local file",
    "Slovak locale sk-SK is supported",
    "Valid on 11/23/2026 and/or later",
    "std::io::Error is returned",
    "com.example.internal.Foo is deprecated",
    "Processed 1234567 rows in 2.5s",
    "Expected one of: pending, running, done",
    "<html><body><h1>404 Not Found</h1><p>The requested URL was not found on this server.</p></body></html>",
    "{\"detail\":[{\"loc\":[\"query\",\"page\"],\"msg\":\"value is not a valid integer\",\"type\":\"type_error.integer\"}]}",
    "Task created by alice",
    "Don't panic, retry later",
    "id 0123456789012345678901234567890123456789 is numeric",
    "slug getting-started-with-the-new-dashboard-v2 moved",
];

#[test]
fn leak_table_is_large_enough() {
    assert!(LEAKS.len() >= 45, "{} leak samples", LEAKS.len());
    assert!(HARMLESS.len() >= 25, "{} harmless samples", HARMLESS.len());
}

#[test]
fn leaks_are_redacted() {
    for (index, (input, secrets)) in LEAKS.iter().enumerate() {
        let out = redact_text(input);
        assert!(matches!(out, Cow::Owned(_)), "sample {index} unchanged: {input:?}");
        assert!(out.contains(REDACTED), "sample {index} has no marker: {out:?}");
        for secret in secrets.iter() {
            assert!(!out.contains(secret), "sample {index}: {secret:?} survived in {out:?}");
        }
    }
}

#[test]
fn harmless_text_is_borrowed() {
    for input in HARMLESS {
        let out = redact_text(input);
        assert!(matches!(out, Cow::Borrowed(_)), "changed harmless input {input:?} into {out:?}");
        assert_eq!(out, *input);
    }
}

#[test]
fn redaction_is_idempotent() {
    for (input, _) in LEAKS {
        let once = redact_text(input).into_owned();
        let twice = redact_text(&once);
        assert!(matches!(twice, Cow::Borrowed(_)), "second pass changed {once:?} into {twice:?}");
    }
}

#[test]
fn every_rule_fires_on_some_sample() {
    assert_eq!(RULES.len(), COMPILED.len());
    assert_eq!(RULES.len(), PRECHECK.len());
    let all = RULES.iter().zip(COMPILED.iter()).chain(std::iter::once((&LONG_TOKEN_RULE, &*LONG_TOKEN)));
    for (index, (rule, regex)) in all.enumerate() {
        let fired = LEAKS.iter().any(|(input, _)| apply_rule(regex, rule.decide, input).is_some());
        assert!(fired, "rule {index} ({}) never fires", rule.pattern);
    }
}

#[test]
fn traces_collapse_to_one_marker() {
    for index in [0, 1, 4, 5, 11, 14, 15] {
        let out = redact_text(LEAKS[index].0);
        assert_eq!(out, REDACTED, "sample {index}");
    }
}

#[test]
fn trace_inside_text_keeps_surroundings() {
    let input = "Request failed.\nTraceback (most recent call last):\n  File \"/app/x.py\", line 1, in <module>\n    boom()\nValueError: bad\nPlease retry.";
    assert_eq!(redact_text(input), "Request failed.\n[redacted]\nPlease retry.");
}

#[test]
fn names_and_punctuation_are_kept() {
    assert_eq!(redact_text("password=hunter2&user=bob"), "password=[redacted]&user=bob");
    assert_eq!(redact_text("{\"password\": \"hunter2\"}"), "{\"password\": \"[redacted]\"}");
    assert_eq!(redact_text("Authorization: Bearer abc123def456"), "Authorization: [redacted]");
    assert_eq!(redact_text("header was Bearer abc123def456."), "header was Bearer [redacted].");
    assert_eq!(redact_text("see /etc/passwd."), "see [redacted].");
    assert_eq!(redact_text("reach http://localhost:8000)."), "reach [redacted]).");
    assert_eq!(redact_text("<p>File &quot;/srv/app/views.py&quot;, line 12, in index</p>"), "<p>[redacted]</p>");
    assert_eq!(redact_text("at 10.0.0.1, then 8.8.8.8"), "at [redacted], then 8.8.8.8");
}

#[test]
fn url_paths_and_routes_survive() {
    for input in [
        "https://example.com/static/app.js",
        "https://example.com/home/user/profile",
        "see /api/v1/tasks and /api/v1/users/{id}/files",
        "s3://public-bucket/reports/2026/q3.csv",
    ] {
        assert_eq!(redact_text(input), input);
    }
}

#[test]
fn clean_4k_text_is_borrowed() {
    let sentence = "The service returned page 3 of 12 for the requested list; see https://docs.example.com/guide/install for v1.2.3 notes. ";
    let mut text = String::new();
    while text.len() < 4096 {
        text.push_str(sentence);
    }
    let out = redact_text(&text);
    assert!(matches!(out, Cow::Borrowed(_)));
    assert!(std::ptr::eq(out.as_ptr(), text.as_ptr()));
}

#[test]
fn large_mixed_input() {
    let mut text = String::new();
    let mut index = 0;
    while text.len() < 64 * 1024 {
        text.push_str(LEAKS[index % LEAKS.len()].0);
        text.push('\n');
        text.push_str(HARMLESS[index % HARMLESS.len()]);
        text.push('\n');
        index += 1;
    }
    let out = redact_text(&text);
    assert!(matches!(out, Cow::Owned(_)));
    for secret in ["hunter2", "10.0.3.7", "AKIAIOSFODNN7EXAMPLE", "/etc/nginx", "goroutine 34"] {
        assert!(!out.contains(secret), "{secret} survived");
    }
    // Adversarial shapes: long runs of near-matches.
    for unit in ["a:", "/a", "at ", "0.", "x=", "-----BEGIN RSA PRIVATE KEY-----", "a.", "\tat a.b(", "Aa1"] {
        let big = unit.repeat(64 * 1024 / unit.len());
        let _ = redact_text(&big);
    }
}
