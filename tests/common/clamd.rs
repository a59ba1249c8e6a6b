//! A real clamd for tests: started on a free 127.0.0.1 port and a unix
//! socket in a temp dir, with a signature database the test writes (the
//! EICAR test string and one custom byte pattern), stopped on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The EICAR anti-virus test file, assembled here so that no file of the
/// repository holds it whole.
pub fn eicar() -> Vec<u8> {
    let parts = ["X5O!P%@AP[4\\PZX54(P^)7CC)7}$", "EICAR-STANDARD-", "ANTIVIRUS-TEST-FILE!$H+H*"];
    parts.concat().into_bytes()
}

/// A byte pattern only the test's own signature knows.
pub fn pattern() -> Vec<u8> {
    let mut p = b"moat-scan-".to_vec();
    p.extend((0u8..32).map(|i| b'a' + (i * 7) % 26));
    p.extend_from_slice(b"-pattern");
    p
}

fn clamd_bin() -> Option<PathBuf> {
    ["/usr/sbin/clamd", "/usr/bin/clamd", "/usr/local/sbin/clamd"].iter().map(PathBuf::from).find(|p| p.exists())
}

/// A clamd on 127.0.0.1 (and a unix socket) with the test's database.
pub struct Clamd {
    child: Option<Child>,
    port: u16,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Clamd {
    /// Starts clamd, or `None` (test skipped) when clamd is not installed
    /// outside CI. In CI (`CI` set) a missing clamd fails the test.
    pub fn start() -> Option<Self> {
        let Some(bin) = clamd_bin() else {
            assert!(std::env::var_os("CI").is_none(), "clamd is not installed (apt-get install clamav-daemon)");
            eprintln!("clamd not installed: scan test skipped");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&db).unwrap();
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(
            db.join("moat-test.ndb"),
            format!("Moat.Test.EICAR:0:*:{}\nMoat.Test.Pattern:0:*:{}\n", hex::encode(eicar()), hex::encode(pattern())),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let socket = dir.path().join("clamd.sock");
        let conf = dir.path().join("clamd.conf");
        std::fs::write(
            &conf,
            format!(
                "Foreground yes\nTCPSocket {port}\nTCPAddr 127.0.0.1\nLocalSocket {}\nDatabaseDirectory {}\n\
                 TemporaryDirectory {}\nLogFile {}\nStreamMaxLength 300M\nMaxScanSize 600M\nMaxFileSize 300M\n",
                socket.display(),
                db.display(),
                tmp.display(),
                dir.path().join("clamd.log").display()
            ),
        )
        .unwrap();
        let child = Command::new(bin).arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let c = Clamd { child: Some(child), port, socket, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if c.ping() {
                return Some(c);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("clamd did not answer PING within 90 s");
    }

    pub fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut r = Vec::new();
        s.write_all(b"zPING\0").is_ok() && s.read_to_end(&mut r).is_ok() && r == b"PONG\0"
    }

    pub fn tcp(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    pub fn unix(&self) -> String {
        format!("unix:{}", self.socket.display())
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        self.stop();
    }
}
