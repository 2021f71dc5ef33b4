//! The host end of a virtio-9p device: a directory with the seeded tree
//! (`shares::lay_out`) on QEMU's `local` fsdev, `shares=` (and, for a
//! scratch share, `scratch=`) telling the firmware, and after the run a
//! check that the tree is unchanged and that `OUT_DIR` holds exactly the
//! files `p9.write` writes, byte for byte.
//!
//! ```
//! use qemu_runner::p9::{P9Scenario, Share9p};
//! use qemu_runner::Scenario;
//!
//! let s = Scenario::new("9p").share_9p(Share9p::new("fe.0.000a", "zvtest").scratch());
//! assert!(s.command_line().contains("shares=fe.0.000a:zvtest:tree"));
//! assert!(s.command_line().contains("scratch=fe.0.000a"));
//! ```

use crate::peers::{Peer, PeerContext, PeerEnd, PeerOutcome, PeerSpec};
use crate::scenario::Scenario;
use crate::shares;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use zvtest_contract::inventory::BusId;
use zvtest_contract::p9 as plan;
use zvtest_contract::share::{self, ShareConfig, OUT_DIR};

/// A change made to the tree after it was laid out, to prove the
/// firmware's reads notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The byte at `offset` of the file at `path` inverted.
    Flip { path: String, offset: u64 },
    /// The file at `path` removed.
    Remove { path: String },
    /// The tree laid out for another seed than the firmware's: every
    /// file's content differs.
    Reseed(u64),
    /// The fsdev read-only although `scratch=` names the share: every
    /// write is refused (EROFS).
    ReadOnly,
}

/// A virtio-9p-ccw device on a directory the runner lays out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share9p {
    pub bus: String,
    pub tag: String,
    /// Where the tree goes (emptied first); by default a directory of the
    /// run's own, removed after it.
    pub dir: Option<PathBuf>,
    /// `scratch=` names it: `p9.write` writes there.
    pub scratch: bool,
    /// `packed=on` on the device.
    pub packed: bool,
    pub faults: Vec<Fault>,
}

impl Share9p {
    pub fn new(bus: &str, tag: &str) -> Self {
        Share9p {
            bus: bus.into(),
            tag: tag.into(),
            dir: None,
            scratch: false,
            packed: false,
            faults: Vec::new(),
        }
    }
    pub fn scratch(mut self) -> Self {
        self.scratch = true;
        self
    }
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }
    pub fn packed(mut self) -> Self {
        self.packed = true;
        self
    }
    pub fn fault(mut self, f: Fault) -> Self {
        self.faults.push(f);
        self
    }
}

/// Scenarios with 9p shares.
pub trait P9Scenario {
    /// The device at `share.bus` on a fresh seeded tree (`-fsdev local`,
    /// `security_model=none`, `readonly=on` unless scratch), `shares=`
    /// with `:tree`, `scratch=` where asked, and the peer that checks
    /// the directory after the run.
    fn share_9p(self, share: Share9p) -> Self;
}

impl P9Scenario for Scenario {
    fn share_9p(self, share: Share9p) -> Self {
        let mut s = self.ccw_device("virtio-9p-ccw", &share.bus, "9p");
        let Ok(bus) = share.bus.parse::<BusId>() else {
            return s; // ccw_device noted the error
        };
        let config = ShareConfig {
            bus,
            tag: share.tag.clone(),
            tree: true,
            queues: None,
        };
        if ShareConfig::parse(&config.item()).as_ref() != Some(&config) {
            s.errors.push(format!(
                "9p {bus}: tag {:?} is not one shares= takes",
                share.tag
            ));
            return s;
        }
        let dev = s.ccw_devices.last_mut().expect("just added");
        dev.backend_args.clear(); // the peer gives the -fsdev
        dev.properties = vec![
            ("fsdev".into(), fsdev_id(bus)),
            ("mount_tag".into(), share.tag.clone()),
        ];
        if share.packed {
            dev.properties.push(("packed".into(), "on".into()));
        }
        s.shares.push((config, share.scratch));
        s.peer(share)
    }
}

fn fsdev_id(bus: BusId) -> String {
    format!("ccw-{bus}-fs")
}

/// A path as a QEMU option value: commas doubled.
fn option_value(p: &Path) -> String {
    p.to_string_lossy().replace(',', ",,")
}

impl PeerSpec for Share9p {
    fn name(&self) -> String {
        format!("9p {}", self.bus)
    }

    fn start(&self, ctx: &PeerContext) -> io::Result<Box<dyn Peer>> {
        let bus: BusId = self
            .bus
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e}")))?;
        let dir = self
            .dir
            .clone()
            .unwrap_or_else(|| ctx.dir.join(format!("9p-{bus}")));
        let layout_seed = self.faults.iter().fold(ctx.seed, |s, f| match f {
            Fault::Reseed(other) => *other,
            _ => s,
        });
        shares::lay_out(&dir, layout_seed)?;
        for f in &self.faults {
            match f {
                Fault::Flip { path, offset } => {
                    let p = dir.join(path);
                    let mut data = fs::read(&p)?;
                    let b = data.get_mut(*offset as usize).ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("fault: {path} has no byte {offset}"),
                        )
                    })?;
                    *b ^= 0xff;
                    // Its mode may be read-only.
                    let mode = fs::metadata(&p)?.permissions();
                    fs::remove_file(&p)?;
                    fs::write(&p, &data)?;
                    fs::set_permissions(&p, mode)?;
                }
                Fault::Remove { path } => fs::remove_file(dir.join(path))?,
                Fault::Reseed(_) | Fault::ReadOnly => {}
            }
        }
        let mut fsdev = format!(
            "local,id={},path={},security_model=none",
            fsdev_id(bus),
            option_value(&dir)
        );
        if !self.scratch || self.faults.contains(&Fault::ReadOnly) {
            fsdev.push_str(",readonly=on");
        }
        Ok(Box::new(Running {
            name: self.name(),
            dir,
            seed: ctx.seed,
            args: vec!["-fsdev".into(), fsdev],
        }))
    }
}

struct Running {
    name: String,
    dir: PathBuf,
    seed: u64,
    args: Vec<String>,
}

impl Peer for Running {
    fn qemu_args(&self) -> Vec<String> {
        self.args.clone()
    }

    fn finish(self: Box<Self>, end: &PeerEnd<'_>) -> PeerOutcome {
        let mut o = PeerOutcome::new(self.name.clone());
        let diffs = shares::differences(&self.dir, self.seed);
        if diffs.is_empty() {
            o.lines.push(format!(
                "the seeded tree is unchanged ({} entries, seed {:#x})",
                share::TREE.len(),
                self.seed
            ));
        }
        o.reasons
            .extend(diffs.into_iter().map(|d| format!("tree changed: {d}")));
        let write = end.tap.result("p9.write");
        let passed = write.is_some_and(|r| r.ok && !r.is_skip());
        let ran = write.is_some_and(|r| !r.is_skip());
        match written_files(&self.dir, self.seed) {
            Found::None if ran && end.complete => o
                .reasons
                .push(format!("p9.write ran, but {OUT_DIR} is not in the share")),
            Found::None => o.lines.push(format!("nothing written ({OUT_DIR} absent)")),
            Found::Files(bytes) if passed && end.complete => {
                o.lines.push(format!(
                    "{} files written by p9.write verified, {bytes} bytes",
                    plan::WRITTEN.len()
                ));
                o.figures.push(("bytes verified".into(), bytes as f64));
            }
            Found::Files(_) if passed || ran => o.lines.push(format!(
                "{OUT_DIR} holds what p9.write writes, the run was incomplete"
            )),
            Found::Files(_) => o
                .reasons
                .push(format!("{OUT_DIR} was written, but p9.write did not run")),
            Found::Wrong(why) if ran && (!passed || !end.complete) => o.lines.push(format!(
                "{OUT_DIR} is not complete (p9.write failed or the run ended early): {}",
                why.join("; ")
            )),
            Found::Wrong(why) => o.reasons.extend(why),
        }
        o
    }
}

/// What `OUT_DIR` holds.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    None,
    /// Exactly the files of `p9.write`, their content right: bytes checked.
    Files(u64),
    /// What is wrong (path, offset, expected and got).
    Wrong(Vec<String>),
}

fn written_files(dir: &Path, seed: u64) -> Found {
    let out = dir.join(OUT_DIR);
    if !out.exists() {
        return Found::None;
    }
    let mut wrong = Vec::new();
    let mut bytes = 0;
    for (n, &size) in plan::WRITTEN.iter().enumerate() {
        let path = plan::written_path(n as u32);
        match fs::read(dir.join(&path)) {
            Err(e) => wrong.push(format!("{path}: expected {size} bytes, got {e}")),
            Ok(data) if data.len() as u64 != size => {
                wrong.push(format!("{path}: expected {size} bytes, got {}", data.len()))
            }
            Ok(data) => match share::first_difference(seed, &path, 0, &data) {
                Some((at, want)) => wrong.push(format!(
                    "{path}: offset {at}: expected {want:#04x}, got {:#04x} (seed {seed:#x})",
                    data[at as usize]
                )),
                None => bytes += size,
            },
        }
    }
    let names: Vec<String> = (0..plan::WRITTEN.len() as u32)
        .map(|n| share::name(&plan::written_path(n)).to_string())
        .collect();
    match fs::read_dir(&out) {
        Ok(rd) => {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !names.contains(&name) {
                    wrong.push(format!(
                        "{OUT_DIR}/{name}: not a file p9.write leaves (left over or misnamed)"
                    ));
                }
            }
        }
        Err(e) => wrong.push(format!("{OUT_DIR}: {e}")),
    }
    if wrong.is_empty() {
        Found::Files(bytes)
    } else {
        Found::Wrong(wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("zvtest-p9-{}-{name}", std::process::id()))
    }

    fn write_out(d: &Path, seed: u64) {
        fs::create_dir_all(d.join(OUT_DIR)).unwrap();
        for (n, &size) in plan::WRITTEN.iter().enumerate() {
            let path = plan::written_path(n as u32);
            let mut data = vec![0u8; size as usize];
            share::fill(seed, &path, 0, &mut data);
            fs::write(d.join(path), data).unwrap();
        }
    }

    /// The files p9.write leaves pass; a flipped byte, a missing file and
    /// a left-over one are each named.
    #[test]
    fn written_files_are_held_to_the_seed() {
        let d = dir("out");
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        assert_eq!(written_files(&d, 5), Found::None);
        write_out(&d, 5);
        assert_eq!(
            written_files(&d, 5),
            Found::Files(plan::WRITTEN.iter().sum())
        );
        let p = d.join(plan::written_path(0));
        let mut data = fs::read(&p).unwrap();
        data[1234] ^= 1;
        fs::write(&p, data).unwrap();
        fs::remove_file(d.join(plan::written_path(2))).unwrap();
        fs::write(d.join(OUT_DIR).join("9p-1.tmp"), b"").unwrap();
        let Found::Wrong(why) = written_files(&d, 5) else {
            panic!("not found wrong")
        };
        assert!(
            why[0].starts_with("zvtest-out/9p-0: offset 1234: expected"),
            "{why:?}"
        );
        assert!(
            why[1].starts_with("zvtest-out/9p-2: expected 1 bytes"),
            "{why:?}"
        );
        assert!(
            why[2].contains("9p-1.tmp: not a file p9.write leaves"),
            "{why:?}"
        );
        assert_eq!(why.len(), 3);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn option_values_double_commas() {
        assert_eq!(option_value(Path::new("/a,b/c")), "/a,,b/c");
    }

    #[test]
    fn the_scenario_says_shares_and_scratch() {
        let s = Scenario::new("t")
            .share_9p(Share9p::new("fe.0.000a", "zvtest").scratch())
            .share_9p(Share9p::new("fe.0.000b", "ro").packed());
        let line = s.command_line();
        assert!(
            line.contains("shares=fe.0.000a:zvtest:tree,fe.0.000b:ro:tree"),
            "{line}"
        );
        assert!(line.contains("scratch=fe.0.000a "), "{line}");
        assert!(line.contains("fe.0.000b:9p:packed"), "{line}");
        assert_eq!(
            s.ccw_devices[0].device_arg(),
            "virtio-9p-ccw,devno=fe.0.000a,id=ccw-fe.0.000a,fsdev=ccw-fe.0.000a-fs,mount_tag=zvtest"
        );
        assert_eq!(s.peers.len(), 2);
        let bad = Scenario::new("t").share_9p(Share9p::new("fe.0.000a", "a b"));
        assert!(bad.validate().is_err());
    }
}
