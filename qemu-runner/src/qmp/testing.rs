//! A scripted QMP server for the client's and the jobs' tests.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread;

pub const GREETING: &str =
    r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}"#;

/// A scripted QMP server: for each line it receives, the next entry of
/// `replies` is written (several lines allowed). Returns what it got.
pub fn fake_server(
    listener: UnixListener,
    replies: Vec<&'static str>,
) -> thread::JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut w = conn.try_clone().unwrap();
        writeln!(w, "{GREETING}\r").unwrap();
        let mut got = Vec::new();
        let mut lines = BufReader::new(conn).lines();
        for reply in replies {
            let Some(Ok(line)) = lines.next() else { break };
            got.push(line);
            if !reply.is_empty() {
                write!(w, "{reply}").unwrap();
            }
        }
        got
    })
}

/// A socket path in a directory of its own, removed on drop.
pub struct TestSocket {
    dir: PathBuf,
    pub path: PathBuf,
}

impl Drop for TestSocket {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub fn socket(test: &str) -> TestSocket {
    // Short: a Unix socket path has at most 107 bytes.
    let dir = std::env::temp_dir().join(format!("zvtest-qmp-unit-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("s.sock");
    TestSocket { dir, path }
}

/// A stream to the fake server listening at `path` (QEMU's end of the
/// pair, in the runner).
pub fn addr(path: &Path) -> UnixStream {
    UnixStream::connect(path).unwrap()
}
