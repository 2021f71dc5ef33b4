//! virtio-fs (`vhost-user-fs-ccw`): the runner starts `virtiofsd` on a
//! socket in the run's directory, sharing a directory laid out with the
//! seeded tree ([`crate::shares::lay_out`]); QEMU connects its device to
//! that socket, with guest RAM on a shared memory back-end (the daemon
//! maps it). After the run the peer stops the daemon (within the
//! deadline) and checks the share: the tree unchanged
//! ([`crate::shares::differences`]) and, in `OUT_DIR`, exactly what a
//! complete `fs.write` leaves (contract `virtiofs::WRITTEN`).
//!
//! The C `virtiofsd` of QEMU 7.2 (`/usr/lib/qemu/virtiofsd`, package
//! qemu-system-common) serves one request queue only: with more, its
//! libvhost-user stops at the second ("Invalid queue index") — seen here.

use crate::peers::{Peer, PeerContext, PeerEnd, PeerOutcome, PeerSpec};
use crate::scenario::{CcwDevice, Scenario};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use zvtest_contract::inventory::BusId;
use zvtest_contract::share::{self, Kind, ShareConfig, OUT_DIR};
use zvtest_contract::virtiofs::{out_name, WRITTEN};

/// Overrides where the daemon is looked for.
pub const VIRTIOFSD_ENV: &str = "ZVTEST_VIRTIOFSD";

/// Where distributions put the daemon: QEMU's C one (Debian bookworm's
/// QEMU 7.2), then the Rust one's usual places.
pub const VIRTIOFSD_PATHS: &[&str] = &[
    "/usr/lib/qemu/virtiofsd",
    "/usr/libexec/virtiofsd",
    "/usr/lib/virtiofsd",
];

/// The daemon on this host, or why there is none (or it cannot run:
/// QEMU 7.2's C daemon runs as root only — as another user it cannot
/// write its pid file under /var/run/virtiofsd, seen here — and its
/// sandbox needs a mount namespace).
pub fn virtiofsd() -> Result<PathBuf, String> {
    let path = find_virtiofsd()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "{} runs as root only (its pid file, its sandbox), and we are not root",
            path.display()
        ));
    }
    Ok(path)
}

fn find_virtiofsd() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(VIRTIOFSD_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{VIRTIOFSD_ENV}={} does not exist", p.display()))
        };
    }
    VIRTIOFSD_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "no virtiofsd on this host (looked for {}; Debian's qemu-system-common has it)",
                VIRTIOFSD_PATHS.join(", ")
            )
        })
}

/// A change the peer makes on purpose, to prove a check fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// After laying out the tree, inverts the byte at `offset` of the file
    /// at `path`: the firmware's read must name it (and the runner's
    /// check of the tree too).
    FlipTreeByte { path: &'static str, offset: u64 },
    /// Inverts the first byte of every 4 KiB page of the file at `path`:
    /// any read across a page start sees one (for `fs.stress`'s reads).
    FlipEveryPage { path: &'static str },
}

/// A virtio-fs device as a scenario describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtioFs {
    pub bus: String,
    pub tag: String,
    /// `scratch=` names it: `fs.write` writes in `OUT_DIR`.
    pub scratch: bool,
    /// The device's `num-request-queues` (None: QEMU's default, 1).
    pub request_queues: Option<u16>,
    /// The shared directory (None: one in the run's directory).
    pub dir: Option<PathBuf>,
    pub fault: Option<Fault>,
    /// The daemon (None: [`virtiofsd`] when the scenario is built).
    pub daemon: Option<PathBuf>,
}

impl VirtioFs {
    pub fn new(bus: &str, tag: &str) -> Self {
        VirtioFs {
            bus: bus.into(),
            tag: tag.into(),
            scratch: false,
            request_queues: None,
            dir: None,
            fault: None,
            daemon: None,
        }
    }

    pub fn scratch(mut self, on: bool) -> Self {
        self.scratch = on;
        self
    }

    pub fn request_queues(mut self, n: u16) -> Self {
        self.request_queues = Some(n);
        self
    }

    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    pub fn fault(mut self, f: Fault) -> Self {
        self.fault = Some(f);
        self
    }

    pub fn daemon(mut self, p: impl Into<PathBuf>) -> Self {
        self.daemon = Some(p.into());
        self
    }
}

/// Adds virtio-fs devices to a scenario.
pub trait VirtioFsScenario {
    /// A `vhost-user-fs-ccw` at `fs.bus` with `tag=`, its `virtiofsd`
    /// started by the runner on the seeded tree, guest RAM shared, and
    /// `shares=BUS:TAG:tree` (and `scratch=BUS` where `fs.scratch`) told
    /// to the firmware.
    fn virtio_fs(self, fs: VirtioFs) -> Self;
}

impl VirtioFsScenario for Scenario {
    fn virtio_fs(mut self, fs: VirtioFs) -> Self {
        let bus: BusId = match fs.bus.parse() {
            Ok(b) => b,
            Err(e) => {
                self.errors.push(format!("virtio-fs device: {e}"));
                return self;
            }
        };
        let given = |p: &PathBuf| {
            if p.is_file() {
                Ok(p.clone())
            } else {
                Err(format!("virtiofsd {} does not exist", p.display()))
            }
        };
        let daemon = match fs.daemon.as_ref().map_or_else(virtiofsd, given) {
            Ok(d) => d,
            Err(why) => {
                self.errors.push(format!("virtio-fs device {bus}: {why}"));
                return self;
            }
        };
        let queues = fs
            .request_queues
            .map(|n| format!(":queues={n}"))
            .unwrap_or_default();
        let Some(config) = ShareConfig::parse(&format!("{}:{}:tree{queues}", bus, fs.tag)) else {
            self.errors.push(format!(
                "virtio-fs device {bus}: tag {:?} is not 1 to 36 characters without ':', ',' or blanks",
                fs.tag
            ));
            return self;
        };
        let mut d = CcwDevice::new("vhost-user-fs-ccw", bus, "fs");
        let chardev = format!("{}-vfs", d.id);
        d.properties = vec![
            ("chardev".into(), chardev.clone()),
            ("tag".into(), fs.tag.clone()),
        ];
        if let Some(n) = fs.request_queues {
            d.properties
                .push(("num-request-queues".into(), n.to_string()));
        }
        self.expected_devices
            .get_or_insert_with(Vec::new)
            .push(d.entry());
        self.ccw_devices.push(d);
        self = self.share(config, fs.scratch).shared_memory(true);
        self.peer(FsPeerSpec {
            bus,
            chardev,
            daemon,
            fs,
        })
    }
}

/// The peer: the daemon and the share it serves.
#[derive(Debug)]
struct FsPeerSpec {
    bus: BusId,
    chardev: String,
    daemon: PathBuf,
    fs: VirtioFs,
}

/// How long the daemon may take to make its socket, and to exit once
/// QEMU has gone (it exits when its connection closes).
const SOCKET_WAIT: Duration = Duration::from_secs(10);
const EXIT_WAIT: Duration = Duration::from_secs(5);

impl PeerSpec for FsPeerSpec {
    fn name(&self) -> String {
        format!("virtiofs {}", self.bus)
    }

    fn start(&self, ctx: &PeerContext) -> io::Result<Box<dyn Peer>> {
        let dir = self
            .fs
            .dir
            .clone()
            .unwrap_or_else(|| ctx.dir.join(format!("fs-{}", self.bus)));
        crate::shares::lay_out(&dir, ctx.seed)?;
        match &self.fs.fault {
            Some(Fault::FlipTreeByte { path, offset }) => flip(&dir.join(path), &[*offset])?,
            Some(Fault::FlipEveryPage { path }) => {
                let len = fs::metadata(dir.join(path))?.len();
                let pages: Vec<u64> = (0..len).step_by(4096).collect();
                flip(&dir.join(path), &pages)?
            }
            None => {}
        }
        let socket = ctx.dir.join(format!("vfs-{}.sock", self.bus));
        let log = ctx.dir.join(format!("vfs-{}.log", self.bus));
        let _ = fs::remove_file(&socket);
        let child = Command::new(&self.daemon)
            .arg(format!("--socket-path={}", socket.display()))
            .arg("-o")
            .arg(format!("source={}", dir.display()))
            // Nothing cached in the guest: every request reaches the share.
            .args(["-o", "cache=none"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log)?)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot start {}: {e}", self.daemon.display()),
                )
            })?;
        let mut peer = FsPeer {
            name: self.name(),
            bus: self.bus,
            chardev: self.chardev.clone(),
            scratch: self.fs.scratch,
            seed: ctx.seed,
            dir,
            socket,
            log,
            child: Some(child),
            deadline: ctx.deadline,
        };
        // The socket is there before QEMU connects, or the daemon said why not.
        let until = (Instant::now() + SOCKET_WAIT).min(ctx.deadline);
        loop {
            if peer.socket.exists() {
                return Ok(Box::new(peer));
            }
            let exited = peer
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= until {
                let why = match exited {
                    Some(st) => format!("exited ({st}) before making its socket"),
                    None => format!("made no socket within {SOCKET_WAIT:?}"),
                };
                let tail = peer.log_tail();
                peer.stop();
                return Err(io::Error::other(format!(
                    "{} {why}: {tail}",
                    self.daemon.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Inverts the bytes at `offsets` of the file `p`.
fn flip(p: &Path, offsets: &[u64]) -> io::Result<()> {
    let mut data = fs::read(p)?;
    for &offset in offsets {
        let b = data
            .get_mut(offset as usize)
            .ok_or_else(|| io::Error::other(format!("{}: no byte at {offset}", p.display())))?;
        *b ^= 0xff;
    }
    fs::write(p, data)
}

struct FsPeer {
    name: String,
    bus: BusId,
    chardev: String,
    scratch: bool,
    seed: u64,
    dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    deadline: Instant,
}

impl FsPeer {
    /// The daemon's last words, for a reason.
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(3);
        if lines.is_empty() {
            "(nothing on its stderr)".into()
        } else {
            lines[from..].join(" | ")
        }
    }

    /// Waits for the daemon to exit (it does once QEMU's connection
    /// closes) until a deadline, then kills it; says how it ended.
    fn stop(&mut self) -> Option<String> {
        let mut child = self.child.take()?;
        let until = (Instant::now() + EXIT_WAIT).min(self.deadline.max(Instant::now()));
        loop {
            match child.try_wait() {
                Ok(Some(st)) => return Some(format!("virtiofsd exited ({st})")),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Some("virtiofsd killed (still running after QEMU)".into());
                }
            }
        }
    }
}

impl Drop for FsPeer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Peer for FsPeer {
    fn qemu_args(&self) -> Vec<String> {
        vec![
            "-chardev".into(),
            format!(
                "socket,id={},path={}",
                self.chardev,
                self.socket.to_string_lossy().replace(',', ",,")
            ),
        ]
    }

    fn finish(mut self: Box<Self>, end: &PeerEnd<'_>) -> PeerOutcome {
        let mut o = PeerOutcome::new(self.name.clone());
        if let Some(how) = self.stop() {
            o.lines.push(how);
        }
        o.lines.push(format!("share {}", self.dir.display()));
        for d in crate::shares::differences(&self.dir, self.seed) {
            o.reasons
                .push(format!("the share's seeded tree changed: {d}"));
        }
        let write = end.tap.result("fs.write");
        let state = match write {
            Some(r) if r.ok && !r.is_skip() => Written::Complete,
            Some(r) if r.is_skip() => Written::Nothing,
            None if end.complete => Written::Nothing,
            _ => Written::Partial,
        };
        if !self.scratch && state != Written::Nothing {
            o.reasons.push(format!(
                "fs.write ran on {}, which scratch= does not name",
                self.bus
            ));
        }
        let found = out_differences(&self.dir, self.seed, state);
        if found.is_empty() && state == Written::Complete {
            o.lines.push(format!(
                "{OUT_DIR}: {} entries as fs.write leaves them, every byte checked",
                WRITTEN.len()
            ));
        }
        o.reasons.extend(found);
        if !o.reasons.is_empty() {
            o.lines.push(format!("virtiofsd said: {}", self.log_tail()));
        }
        o
    }
}

/// How far `fs.write` got, as the report says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Written {
    /// It passed: exactly `WRITTEN` in `OUT_DIR`.
    Complete,
    /// It did not run (or skipped): no `OUT_DIR`.
    Nothing,
    /// It failed or the run was cut: whatever is there holds the right bytes.
    Partial,
}

/// How `OUT_DIR` of the share at `dir` differs from what `fs.write` left.
fn out_differences(dir: &Path, seed: u64, state: Written) -> Vec<String> {
    let out = dir.join(OUT_DIR);
    let mut found = Vec::new();
    if !out.exists() {
        if state == Written::Complete {
            found.push(format!(
                "{OUT_DIR}: expected fs.write's directory, got none"
            ));
        }
        return found;
    }
    if state == Written::Nothing {
        found.push(format!(
            "{OUT_DIR}: exists, but fs.write did not run (nothing may be written)"
        ));
        return found;
    }
    let names: Vec<String> = match fs::read_dir(&out) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => return vec![format!("{OUT_DIR}: {e}")],
    };
    for n in &names {
        if !WRITTEN.iter().any(|(p, _)| out_name(p) == n) {
            found.push(format!("{OUT_DIR}/{n}: not something fs.write leaves"));
        }
    }
    for &(path, kind) in WRITTEN {
        let p = dir.join(path);
        let meta = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(_) if state == Written::Partial => continue,
            Err(e) => {
                found.push(format!("{path}: expected it to exist, got {e}"));
                continue;
            }
        };
        match kind {
            Kind::Dir => {
                if !meta.is_dir() {
                    found.push(format!("{path}: expected a directory"));
                } else if let Some(e) = fs::read_dir(&p).ok().and_then(|mut r| r.next()) {
                    let name = e.map(|e| e.file_name()).unwrap_or_default();
                    found.push(format!(
                        "{path}: expected empty, got {} (unlinked by fs.write)",
                        name.to_string_lossy()
                    ));
                }
            }
            Kind::File(size) => {
                if !meta.is_file() {
                    found.push(format!("{path}: expected a regular file"));
                    continue;
                }
                if state == Written::Complete && meta.len() != size {
                    found.push(format!("{path}: expected {size} bytes, got {}", meta.len()));
                }
                if let Some(d) = content_difference(&p, seed, path) {
                    found.push(d);
                }
            }
            Kind::Symlink(_) => {}
        }
    }
    found
}

/// Where the file `p` first differs from `share::byte` of `path`.
fn content_difference(p: &Path, seed: u64, path: &str) -> Option<String> {
    let mut data = Vec::new();
    if let Err(e) = fs::File::open(p).and_then(|mut f| f.read_to_end(&mut data)) {
        return Some(format!("{path}: {e}"));
    }
    share::first_difference(seed, path, 0, &data).map(|(off, want)| {
        format!(
            "{path}: offset {off}: expected {want:#04x}, got {:#04x} (seed {seed:#x})",
            data[off as usize]
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zvtest_contract::virtiofs::{DIR, FILE, FILE_SIZE};

    fn dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("zvtest-vfs-{}-{name}", std::process::id()))
    }

    fn write_complete(d: &Path, seed: u64) {
        fs::create_dir_all(d.join(DIR)).unwrap();
        let mut data = vec![0u8; FILE_SIZE as usize];
        share::fill(seed, FILE, 0, &mut data);
        fs::write(d.join(FILE), data).unwrap();
    }

    /// What fs.write leaves passes; a flipped byte, a short file, an extra
    /// name, a leftover in the directory, writing where nothing may be
    /// written and a missing file are each named.
    #[test]
    fn the_out_dir_is_held_to_what_fs_write_leaves() {
        let d = dir("out");
        let _ = fs::remove_dir_all(&d);
        write_complete(&d, 9);
        assert_eq!(
            out_differences(&d, 9, Written::Complete),
            Vec::<String>::new()
        );
        assert_eq!(out_differences(&d, 9, Written::Nothing).len(), 1);
        let mut data = fs::read(d.join(FILE)).unwrap();
        data[1234] ^= 0xff;
        fs::write(d.join(FILE), &data).unwrap();
        let got = out_differences(&d, 9, Written::Complete);
        assert!(
            got.len() == 1 && got[0].starts_with("zvtest-out/fs-0: offset 1234: expected"),
            "{got:?}"
        );
        fs::write(d.join(FILE), &data[..100]).unwrap();
        fs::write(d.join(DIR).join("fs-gone"), b"x").unwrap();
        fs::write(d.join(OUT_DIR).join("stray"), b"x").unwrap();
        let got = out_differences(&d, 9, Written::Complete);
        for want in [
            "zvtest-out/stray: not something",
            "zvtest-out/fs-0: expected 20011 bytes, got 100",
            "zvtest-out/fs-dir: expected empty, got fs-gone",
        ] {
            assert!(got.iter().any(|g| g.starts_with(want)), "{want}: {got:?}");
        }
        // A partial run's short file is fine as far as it goes.
        fs::remove_file(d.join(OUT_DIR).join("stray")).unwrap();
        fs::remove_file(d.join(DIR).join("fs-gone")).unwrap();
        write_complete(&d, 9);
        fs::write(d.join(FILE), &fs::read(d.join(FILE)).unwrap()[..100]).unwrap();
        assert_eq!(
            out_differences(&d, 9, Written::Partial),
            Vec::<String>::new()
        );
        fs::remove_dir_all(d.join(OUT_DIR)).unwrap();
        assert_eq!(
            out_differences(&d, 9, Written::Partial),
            Vec::<String>::new()
        );
        assert_eq!(out_differences(&d, 9, Written::Complete).len(), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    /// A daemon that dies before making its socket: the run cannot start,
    /// and the error says so (no wait past it); the tree was laid out.
    #[test]
    fn a_daemon_without_socket_is_named() {
        let d = dir("nosock");
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        let spec = FsPeerSpec {
            bus: "fe.0.0010".parse().unwrap(),
            chardev: "c".into(),
            daemon: "/bin/false".into(),
            fs: VirtioFs::new("fe.0.0010", "t").dir(d.join("share")),
        };
        let ctx = PeerContext {
            dir: d.clone(),
            seed: 3,
            deadline: Instant::now() + Duration::from_secs(20),
        };
        let e = spec.start(&ctx).err().expect("no socket, no peer");
        assert!(
            e.to_string()
                .contains("/bin/false exited (exit status: 1) before making its socket"),
            "{e}"
        );
        assert_eq!(
            crate::shares::differences(&d.join("share"), 3),
            Vec::<String>::new()
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_scenario_gets_device_share_and_shared_memory() {
        let s = Scenario::new("vfs").virtio_fs(
            VirtioFs::new("fe.0.0010", "zv-fs")
                .scratch(true)
                .daemon("/bin/true"),
        );
        assert!(s.validate().is_ok(), "{:?}", s.validate());
        assert!(s.shared_memory);
        let d = &s.ccw_devices[0];
        assert_eq!(
            d.device_arg(),
            "vhost-user-fs-ccw,devno=fe.0.0010,id=ccw-fe.0.0010,chardev=ccw-fe.0.0010-vfs,tag=zv-fs"
        );
        let line = s.command_line();
        assert!(line.contains("shares=fe.0.0010:zv-fs:tree"), "{line}");
        assert!(line.contains("scratch=fe.0.0010"), "{line}");
        assert!(line.contains("devices=fe.0.0010:fs"), "{line}");
        assert_eq!(s.peers.len(), 1);
        let bad =
            Scenario::new("b").virtio_fs(VirtioFs::new("fe.0.0010", "a b").daemon("/bin/true"));
        assert!(bad.validate().unwrap_err().contains("tag"));
        let none =
            Scenario::new("n").virtio_fs(VirtioFs::new("fe.0.0010", "t").daemon("/nonexistent"));
        assert!(none.validate().is_err());
    }
}
