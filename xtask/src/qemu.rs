//! `cargo xtask qemu <10.0|11.1>`: a newer QEMU beside the system's 7.2,
//! without touching the system.
//!
//! Installing a newer QEMU through apt would replace 7.2, so instead:
//!
//! 1. the machine's own Debian source entry is copied with only the suite
//!    changed (nothing new is hard-coded: same mirror, components and key)
//!    into a private apt configuration: `<codename>-backports` for 10.0,
//!    `sid` (Debian unstable) for 11.1;
//! 2. `apt-get update`, `apt-cache depends` and `apt-get download` run with
//!    `Dir::Etc`, `Dir::State` and `Dir::Cache` pointing into a work folder
//!    beside the result, so the system's sources, lists and cache stay as
//!    they are;
//! 3. the packages are unpacked with `dpkg -x` into `target/qemu-<X.Y>/`
//!    (R below), a stamp file is written, and the work folder removed.
//!
//! 10.0 (bookworm-backports) is built against bookworm's libraries: the
//! packages `qemu-system-s390x`, `qemu-system-data` and `qemu-system-common`
//! (its loadable modules: virtio-gpu-ccw is one) are enough;
//! `R/usr/bin/qemu-system-s390x` runs as it is, started by the script
//! `R/qemu-system-s390x` with `QEMU_MODULE_DIR` on R's modules (the
//! system's 7.2 modules do not fit it). A folder fetched before the
//! modules were (no script) is fetched afresh.
//!
//! 11.1 (sid) needs a newer C library than the machine's. So it comes with
//! its whole dependency closure (about 70 packages, minus what only
//! maintainer scripts need: see [`EXCLUDED`]) and runs under the dynamic
//! loader from that closure, with `--library-path` on R's libraries and
//! `QEMU_MODULE_DIR` on R's loadable modules (virtio-gpu-ccw is one; the
//! system's 7.2 modules do not fit it). The generated script
//! `R/qemu-system-s390x` does that with `exec`, so whoever starts it gets
//! QEMU's own pid (the runner kills that pid on a timeout).

use crate::cmd;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The QEMU releases that can be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    V10_0,
    V11_1,
}

impl Release {
    pub const ALL: [Release; 2] = [Release::V10_0, Release::V11_1];

    /// `10.0` or `11.1`.
    pub fn parse(s: &str) -> Option<Release> {
        Release::ALL.into_iter().find(|r| r.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            Release::V10_0 => "10.0",
            Release::V11_1 => "11.1",
        }
    }

    pub fn version(self) -> (u16, u16) {
        match self {
            Release::V10_0 => (10, 0),
            Release::V11_1 => (11, 1),
        }
    }

    /// The folder under the target directory.
    pub fn dir(self) -> String {
        format!("qemu-{}", self.name())
    }

    /// The Debian suite that has it, given the machine's release codename.
    pub fn suite(self, codename: &str) -> String {
        match self {
            Release::V10_0 => format!("{codename}-backports"),
            Release::V11_1 => "sid".into(),
        }
    }

    /// The binary to run, under the folder.
    fn binary(self, root: &Path) -> PathBuf {
        match self {
            Release::V10_0 | Release::V11_1 => root.join(WRAPPER),
        }
    }
}

/// The package whose binary we want.
const QEMU_PACKAGE: &str = "qemu-system-s390x";
/// 10.0's packages: the binary, its firmware/data files and its loadable
/// modules (virtio-gpu-ccw among them).
const PACKAGES_10_0: [&str; 3] = [QEMU_PACKAGE, "qemu-system-data", "qemu-system-common"];
/// 11.1's start script, at the top of its folder.
const WRAPPER: &str = "qemu-system-s390x";
/// Written last: its presence says the folder is complete.
const STAMP: &str = ".xtask-fetched";

/// Packages that only maintainer scripts need (users, groups, questions,
/// services, PAM): nothing of them runs in `qemu-system-s390x`, and they
/// would pull in perl, systemd and more. A dependency group whose every
/// alternative is here is dropped.
pub const EXCLUDED: [&str; 20] = [
    "debconf",
    "debconf-2.0",
    "cdebconf",
    "perl",
    "perl-base",
    "systemd",
    "systemd-sysusers",
    "systemd-standalone-sysusers",
    "opensysusers",
    "init-system-helpers",
    "adduser",
    "passwd",
    "base-passwd",
    "login.defs",
    "libpam0g",
    "libpam-modules",
    "libpam-modules-bin",
    "libpam-runtime",
    "ucf",
    "dpkg",
];

/// Where the machine's apt sources are.
const SOURCES_LIST: &str = "/etc/apt/sources.list";
const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
/// Each apt step; the lists of sid are about 17 MB.
const APT_LIMIT: Duration = Duration::from_secs(15 * 60);
const DPKG_LIMIT: Duration = Duration::from_secs(5 * 60);

/// A QEMU to boot the scenarios with: binary, data directory and the
/// version it reports.
#[derive(Debug, Clone)]
pub struct Qemu {
    pub binary: PathBuf,
    /// `-L`; empty for the system's QEMU, which knows its own.
    pub data_dir: PathBuf,
    pub version: qemu_runner::QemuVersion,
}

impl Qemu {
    /// The QEMU of `release` under `root`, if the folder is complete (its
    /// stamp is there) and the binary answers `--version` with the release.
    fn find(root: &Path, release: Release) -> Option<Qemu> {
        if !root.join(STAMP).is_file() {
            return None;
        }
        Qemu::check(root, release).ok()
    }

    /// The QEMU under `root`, or why it does not work.
    fn check(root: &Path, release: Release) -> Result<Qemu, String> {
        let binary = release.binary(root);
        let data_dir = root.join("usr/share/qemu");
        if !data_dir.join("s390-ccw.img").is_file() {
            return Err(format!("{} has no s390-ccw.img", data_dir.display()));
        }
        let version = qemu_runner::detect_qemu_version(&binary)
            .map_err(|e| format!("{} --version: {e}", binary.display()))?;
        if (version.major, version.minor) != release.version() {
            return Err(format!(
                "{} is QEMU {}, not {}",
                binary.display(),
                version.full(),
                release.name()
            ));
        }
        Ok(Qemu {
            binary,
            data_dir,
            version,
        })
    }
}

/// One apt source entry, in the format of the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    /// The entry's text, ready to be written to a file.
    pub text: String,
    /// `sources` (deb822) or `list` (one-line): apt reads a file by its extension.
    pub extension: &'static str,
    /// The suite it names (`bookworm-backports`, `sid`).
    pub suite: String,
    /// Where the original came from.
    pub origin: String,
}

/// A Debian release codename as a suite: `bookworm` (not `bookworm-updates`,
/// `bookworm-security`, `stable` is fine too but is not what we look for).
fn is_codename(suite: &str) -> bool {
    !suite.is_empty() && suite.bytes().all(|b| b.is_ascii_lowercase())
}

/// Suites that name a release rather than a codename; the backports suite
/// of `stable` is `stable-backports`, which works as well, but a codename
/// is preferred when both are there.
fn is_release_name(suite: &str) -> bool {
    matches!(
        suite,
        "stable" | "oldstable" | "testing" | "unstable" | "sid"
    )
}

/// A new entry made from the first binary (`deb`) Debian entry naming a
/// release codename, in `files` (name, content): deb822 `.sources` files
/// and one-line `.list` files (or `sources.list`). Everything of that entry
/// is kept but its suites, which become the one `suite_for(codename)`
/// (`bookworm-backports`, `sid`); comments are dropped.
pub fn source_entry(
    files: &[(String, String)],
    suite_for: impl Fn(&str) -> String,
) -> Result<SourceEntry, String> {
    for (name, content) in files {
        let found = if name.ends_with(".sources") {
            deb822_entry(content, &suite_for)
        } else {
            one_line_entry(content, &suite_for)
        };
        if let Some((text, suite, extension)) = found {
            return Ok(SourceEntry {
                text,
                extension,
                suite,
                origin: name.clone(),
            });
        }
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    Err(format!(
        "no Debian 'deb' source entry naming a release (such as bookworm) in {}",
        if names.is_empty() {
            "(no apt source files)".to_string()
        } else {
            names.join(", ")
        }
    ))
}

/// In deb822 text, the first enabled stanza with `Types: deb` and a
/// codename suite, with `Suites:` replaced.
fn deb822_entry(
    content: &str,
    suite_for: &dyn Fn(&str) -> String,
) -> Option<(String, String, &'static str)> {
    // Stanzas are separated by blank lines (which may hold spaces).
    let mut stanzas = vec![String::new()];
    for line in content.lines() {
        if line.trim().is_empty() {
            stanzas.push(String::new());
        } else {
            let last = stanzas.last_mut().expect("never empty");
            last.push_str(line);
            last.push('\n');
        }
    }
    for stanza in stanzas {
        // Fields with their continuation lines; comments dropped.
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines().filter(|l| !l.starts_with('#')) {
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = fields.last_mut() {
                    v.push('\n');
                    v.push_str(line);
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        };
        let words = |key: &str| {
            get(key)
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        if !words("Types").contains(&"deb") || get("Enabled").is_some_and(|e| e == "no") {
            continue;
        }
        let suites = words("Suites");
        let Some(codename) = pick_codename(&suites) else {
            continue;
        };
        let suite = suite_for(codename);
        let mut text = String::new();
        for (k, v) in &fields {
            let v = if k.eq_ignore_ascii_case("Suites") {
                &suite
            } else if k.eq_ignore_ascii_case("Types") {
                // Only the binary packages are wanted.
                "deb"
            } else {
                v
            };
            text.push_str(&format!("{k}: {v}\n"));
        }
        return Some((text, suite, "sources"));
    }
    None
}

/// A codename among `suites`, else a release name such as `stable`.
fn pick_codename<'a>(suites: &[&'a str]) -> Option<&'a str> {
    suites
        .iter()
        .find(|s| is_codename(s) && !is_release_name(s))
        .or_else(|| suites.iter().find(|s| is_release_name(s)))
        .copied()
}

/// In one-line sources, the first `deb [options] URI SUITE COMPONENTS...`
/// with a codename suite, with the suite replaced.
fn one_line_entry(
    content: &str,
    suite_for: &dyn Fn(&str) -> String,
) -> Option<(String, String, &'static str)> {
    for line in content.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let rest = rest.trim_start();
        // "[arch=amd64 signed-by=...]" may hold spaces.
        let (options, rest) = match rest.strip_prefix('[') {
            Some(r) => match r.split_once(']') {
                Some((o, r)) => (format!("[{o}] "), r.trim_start()),
                None => continue,
            },
            None => (String::new(), rest),
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let [uri, suite, components @ ..] = &words[..] else {
            continue;
        };
        let Some(codename) = pick_codename(&[*suite]) else {
            continue;
        };
        if components.is_empty() {
            continue;
        }
        let suite = suite_for(codename);
        let text = format!("deb {options}{uri} {suite} {}\n", components.join(" "));
        return Some((text, suite, "list"));
    }
    None
}

/// The machine's apt source files, `sources.list` first, then the
/// directory's `.sources` and `.list` files by name.
fn machine_sources() -> Vec<(String, String)> {
    let mut files = Vec::new();
    if let Ok(text) = fs::read_to_string(SOURCES_LIST) {
        files.push((SOURCES_LIST.to_string(), text));
    }
    let mut names: Vec<PathBuf> = fs::read_dir(SOURCES_DIR)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    names.sort();
    for p in names {
        let name = p.to_string_lossy().into_owned();
        if !(name.ends_with(".sources") || name.ends_with(".list")) {
            continue;
        }
        if let Ok(text) = fs::read_to_string(&p) {
            files.push((name, text));
        }
    }
    files
}

/// apt options that keep everything inside `apt_dir`.
fn apt_options(apt_dir: &Path, sourcelist: &Path, root: bool) -> Vec<String> {
    let mut o = vec![
        format!("Dir::Etc::sourcelist={}", sourcelist.display()),
        format!(
            "Dir::Etc::sourceparts={}",
            apt_dir.join("sources.list.d").display()
        ),
        format!(
            "Dir::Etc::preferences={}",
            apt_dir.join("preferences").display()
        ),
        format!(
            "Dir::Etc::preferencesparts={}",
            apt_dir.join("preferences.d").display()
        ),
        format!("Dir::State={}", apt_dir.join("state").display()),
        format!("Dir::Cache={}", apt_dir.join("cache").display()),
    ];
    if root {
        // The unprivileged _apt user cannot write into our folder.
        o.push("APT::Sandbox::User=root".into());
    }
    o.into_iter().flat_map(|x| ["-o".to_string(), x]).collect()
}

/// One alternative of a dependency: a package, or a virtual package
/// (`<debconf-2.0>` in apt-cache's output) with the packages providing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    pub name: String,
    pub virtual_: bool,
    pub providers: Vec<String>,
}

/// Each package's dependencies: groups of alternatives (`a | b`), from
/// `apt-cache depends --recurse` output, where a package's name starts a
/// line, `  Depends: x` ends a group, ` |Depends: x` goes on to the next
/// alternative, and deeper-indented lines name providers of a virtual one.
pub fn parse_depends(text: &str) -> BTreeMap<String, Vec<Vec<Alternative>>> {
    let mut graph: BTreeMap<String, Vec<Vec<Alternative>>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut open = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            let name = line.trim();
            let name = name.trim_start_matches('<').trim_end_matches('>');
            graph.entry(name.to_string()).or_default();
            current = Some(name.to_string());
            open = false;
            continue;
        }
        let Some(groups) = current.as_ref().and_then(|c| graph.get_mut(c)) else {
            continue;
        };
        let marker = line.as_bytes().get(1).copied();
        match line.trim().trim_start_matches('|').split_once(": ") {
            Some((kind, dep))
                if matches!(marker, Some(b' ' | b'|')) && !line.starts_with("   ") =>
            {
                if !matches!(kind, "Depends" | "PreDepends") {
                    continue;
                }
                let virtual_ = dep.starts_with('<');
                let alt = Alternative {
                    name: dep.trim_matches(['<', '>']).to_string(),
                    virtual_,
                    providers: Vec::new(),
                };
                match groups.last_mut() {
                    Some(g) if open => g.push(alt),
                    _ => groups.push(vec![alt]),
                }
                open = marker == Some(b'|');
            }
            _ => {
                // A provider of the alternative just named.
                if let Some(alt) = groups.last_mut().and_then(|g| g.last_mut()) {
                    alt.providers.push(line.trim().to_string());
                }
            }
        }
    }
    graph
}

/// The packages `root` needs, breadth first: for each dependency group the
/// first alternative not `excluded` (for a virtual one, its first provider
/// not excluded). Groups with nothing but excluded names are left out; a
/// group that cannot be met otherwise is an error.
pub fn closure(
    graph: &BTreeMap<String, Vec<Vec<Alternative>>>,
    root: &str,
    excluded: &[&str],
) -> Result<Vec<String>, String> {
    let is_excluded = |n: &str| excluded.contains(&n);
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([root.to_string()]);
    while let Some(pkg) = queue.pop_front() {
        if !seen.insert(pkg.clone()) {
            continue;
        }
        order.push(pkg.clone());
        for group in graph.get(&pkg).into_iter().flatten() {
            let pick = group.iter().find_map(|alt| {
                if is_excluded(&alt.name) {
                    None
                } else if alt.virtual_ {
                    alt.providers.iter().find(|p| !is_excluded(p)).cloned()
                } else {
                    Some(alt.name.clone())
                }
            });
            // Nothing but excluded names (a virtual one counts as excluded
            // when it has providers and all of them are): left out.
            let dropped = || {
                group.iter().all(|a| {
                    is_excluded(&a.name)
                        || (a.virtual_
                            && !a.providers.is_empty()
                            && a.providers.iter().all(|p| is_excluded(p)))
                })
            };
            match pick {
                Some(p) => queue.push_back(p),
                None if dropped() => {}
                None => {
                    let names: Vec<&str> = group.iter().map(|a| a.name.as_str()).collect();
                    return Err(format!(
                        "nothing provides {} (a dependency of {pkg})",
                        names.join(" | ")
                    ));
                }
            }
        }
    }
    Ok(order)
}

/// The dynamic loader in an unpacked Debian tree and the library folder
/// it sits in (`usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`), relative.
fn find_loader(root: &Path) -> Option<(PathBuf, PathBuf)> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root.join("usr/lib"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("ld-linux") && n.contains(".so"))
            .collect();
        names.sort();
        if let Some(n) = names.first() {
            let libdir = dir.strip_prefix(root).ok()?.to_path_buf();
            return Some((libdir.join(n), libdir));
        }
    }
    None
}

/// The start script for an unpacked QEMU that needs its own C library:
/// paths relative to the script's folder (so the folder can move), the
/// loader `exec`ed so QEMU keeps the script's pid.
pub fn wrapper_script(loader: &Path, libdir: &Path, note: &str) -> String {
    let (loader, libdir) = (loader.display(), libdir.display());
    format!(
        "#!/bin/sh\n\
         # {note}\n\
         # Written by cargo xtask: QEMU runs with the C library and modules\n\
         # unpacked beside it, not the system's.\n\
         R=$(cd \"$(dirname \"$0\")\" && pwd -P) || exit 127\n\
         export QEMU_MODULE_DIR=\"$R/{libdir}/qemu\"\n\
         exec \"$R/{loader}\" --library-path \"$R/{libdir}\" \\\n    \
         \"$R/usr/bin/qemu-system-s390x\" -L \"$R/usr/share/qemu\" \"$@\"\n"
    )
}

/// The start script for an unpacked QEMU built for the machine's C
/// library: only its modules and data are R's (paths relative to the
/// script's folder; QEMU keeps the script's pid).
pub fn modules_script(libdir: &str, note: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # {note}\n\
         # Written by cargo xtask: QEMU runs with the modules unpacked beside\n\
         # it, not the system's.\n\
         R=$(cd \"$(dirname \"$0\")\" && pwd -P) || exit 127\n\
         export QEMU_MODULE_DIR=\"$R/{libdir}/qemu\"\n\
         exec \"$R/usr/bin/qemu-system-s390x\" -L \"$R/usr/share/qemu\" \"$@\"\n"
    )
}

fn deb_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    files.sort();
    Ok(files)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn size_of(path: &Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::read_dir(path)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| size_of(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn say(release: Release, msg: &str) {
    eprintln!("xtask: qemu {}: {msg}", release.name());
}

/// QEMU `release` in `<target>/qemu-<X.Y>`: the one there if its stamp is
/// there and it answers `--version`, else downloaded and unpacked afresh
/// (into a side folder first, so an interrupted fetch never leaves a half
/// QEMU behind).
pub fn ensure(target: &Path, release: Release, root: bool) -> Result<Qemu, String> {
    let dir = target.join(release.dir());
    if let Some(q) = Qemu::find(&dir, release) {
        return Ok(q);
    }
    let started = Instant::now();
    let files = machine_sources();
    let entry = source_entry(&files, |c| release.suite(c))?;
    let work = target.join(format!("{}.work", release.dir()));
    let partial = work.join("root");
    let _ = fs::remove_dir_all(&work);
    let apt_dir = work.join("apt");
    let debs = work.join("debs");
    for d in [
        apt_dir.join("sources.list.d"),
        apt_dir.join("preferences.d"),
        apt_dir.join("state/lists/partial"),
        apt_dir.join("cache/archives/partial"),
        debs.clone(),
        partial.clone(),
    ] {
        fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let sourcelist = apt_dir.join(format!("private.{}", entry.extension));
    fs::write(&sourcelist, &entry.text)
        .map_err(|e| format!("cannot write {}: {e}", sourcelist.display()))?;
    let options = apt_options(&apt_dir, &sourcelist, root);
    let apt = |tool: &str| {
        let mut c = Command::new(tool);
        c.args(&options);
        c
    };
    say(
        release,
        &format!(
            "fetching Debian's {QEMU_PACKAGE} from suite {} (the entry of {} with only the \
             suite changed) into {}; apt's state stays private in {}",
            entry.suite,
            entry.origin,
            dir.display(),
            work.display()
        ),
    );

    let mut update = apt("apt-get");
    update.arg("update");
    say(
        release,
        &format!("apt-get update: the package lists of {}", entry.suite),
    );
    cmd::output_within(update, "apt-get update (private lists)", APT_LIMIT)?;
    say(
        release,
        &format!(
            "package lists: {} on disk, in the private state",
            mb(size_of(&apt_dir.join("state/lists")))
        ),
    );

    let packages: Vec<String> = match release {
        Release::V10_0 => PACKAGES_10_0.iter().map(|p| p.to_string()).collect(),
        Release::V11_1 => {
            let mut depends = apt("apt-cache");
            depends.args([
                "depends",
                "--recurse",
                "--no-recommends",
                "--no-suggests",
                "--no-conflicts",
                "--no-breaks",
                "--no-replaces",
                "--no-enhances",
                QEMU_PACKAGE,
            ]);
            let out = cmd::output_within(depends, "apt-cache depends", APT_LIMIT)?;
            let graph = parse_depends(&String::from_utf8_lossy(&out.stdout));
            let all = closure(&graph, QEMU_PACKAGE, &EXCLUDED)
                .map_err(|e| format!("the dependency closure of {QEMU_PACKAGE}: {e}"))?;
            say(
                release,
                &format!(
                    "{} packages: {QEMU_PACKAGE} and its dependencies, leaving out what only \
                     maintainer scripts need ({})",
                    all.len(),
                    EXCLUDED.join(" ")
                ),
            );
            all
        }
    };

    let mut download = apt("apt-get");
    download.arg("download").args(&packages).current_dir(&debs);
    say(
        release,
        &format!("apt-get download of {} packages", packages.len()),
    );
    cmd::output_within(download, "apt-get download", APT_LIMIT)?;
    let files = deb_files(&debs)?;
    for p in &packages {
        let prefix = format!("{p}_");
        let got = files.iter().any(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        });
        if !got {
            return Err(format!(
                "apt-get download left no {p} package in {}",
                debs.display()
            ));
        }
    }
    let downloaded: u64 = files.iter().map(|f| size_of(f)).sum();
    say(
        release,
        &format!("downloaded {} packages, {}", files.len(), mb(downloaded)),
    );
    for deb in &files {
        let mut x = Command::new("dpkg");
        x.arg("-x").arg(deb).arg(&partial);
        cmd::output_within(x, &format!("dpkg -x {}", deb.display()), DPKG_LIMIT)?;
    }
    let note = format!(
        "QEMU from Debian {}, unpacked by cargo xtask qemu {}",
        entry.suite,
        release.name()
    );
    if release == Release::V10_0 {
        let libdir = fs::read_dir(partial.join("usr/lib"))
            .ok()
            .and_then(|d| {
                d.filter_map(|e| e.ok())
                    .find(|e| e.path().join("qemu").is_dir())
            })
            .map(|e| format!("usr/lib/{}", e.file_name().to_string_lossy()))
            .ok_or_else(|| {
                format!(
                    "no loadable modules (usr/lib/*/qemu) among the unpacked packages in {}",
                    partial.display()
                )
            })?;
        let script = partial.join(WRAPPER);
        fs::write(&script, modules_script(&libdir, &note))
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot make {} executable: {e}", script.display()))?;
    }
    if release == Release::V11_1 {
        let (loader, libdir) = find_loader(&partial).ok_or_else(|| {
            format!(
                "no dynamic loader (usr/lib/*/ld-linux*.so*) among the unpacked packages in {}",
                partial.display()
            )
        })?;
        let script = partial.join(WRAPPER);
        fs::write(&script, wrapper_script(&loader, &libdir, &note))
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot make {} executable: {e}", script.display()))?;
    }
    let q = Qemu::check(&partial, release).map_err(|e| {
        format!(
            "the unpacked QEMU does not work: {e}\n(left in {} to look at)",
            partial.display()
        )
    })?;
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let stamp = format!(
        "QEMU {} from Debian {} ({})\n{}\n",
        q.version.full(),
        entry.suite,
        entry.origin,
        names.join("\n")
    );
    fs::write(partial.join(STAMP), stamp)
        .map_err(|e| format!("cannot write the stamp in {}: {e}", partial.display()))?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&partial, &dir).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            dir.display()
        )
    })?;
    let _ = fs::remove_dir_all(&work);
    say(
        release,
        &format!(
            "QEMU {} ready in {:.0} s: {} unpacked into {}",
            q.version.full(),
            started.elapsed().as_secs_f64(),
            mb(size_of(&dir)),
            dir.display()
        ),
    );
    Qemu::find(&dir, release)
        .ok_or_else(|| format!("QEMU in {} stopped working after the move", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backports(files: &[(String, String)]) -> Result<SourceEntry, String> {
        source_entry(files, |c| Release::V10_0.suite(c))
    }

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect()
    }

    /// This machine's files, as they are.
    const DEBIAN_SOURCES: &str = "\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

    const DEBIAN_SRC_SOURCES: &str = "\
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

    #[test]
    fn deb822_entry_with_only_the_suite_changed() {
        let e = backports(&files(&[
            (
                "/etc/apt/sources.list.d/debian-src.sources",
                DEBIAN_SRC_SOURCES,
            ),
            ("/etc/apt/sources.list.d/debian.sources", DEBIAN_SOURCES),
        ]))
        .unwrap();
        assert_eq!(
            e.text,
            "Types: deb\n\
             URIs: http://deb.debian.org/debian\n\
             Suites: bookworm-backports\n\
             Components: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
        assert_eq!(e.extension, "sources");
        assert_eq!(e.suite, "bookworm-backports");
        assert_eq!(e.origin, "/etc/apt/sources.list.d/debian.sources");
    }

    #[test]
    fn deb822_details() {
        // A disabled stanza first, a blank line with spaces, both types, a multi-line key.
        let text = "\
Types: deb
URIs: http://mirror.example/debian
Suites: trixie
Components: main
Enabled: no
  \n\
Types: deb-src deb
URIs: http://mirror.example/debian
Suites: trixie-updates trixie
Components: main contrib
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 -----END PGP PUBLIC KEY BLOCK-----
";
        let e = backports(&files(&[("a.sources", text)])).unwrap();
        assert_eq!(e.suite, "trixie-backports");
        assert!(e.text.starts_with("Types: deb\n"), "{}", e.text);
        assert!(e.text.contains("Suites: trixie-backports\n"), "{}", e.text);
        assert!(e.text.contains("Components: main contrib\n"));
        assert!(e
            .text
            .contains("Signed-By: \n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n"));
        // A release name when there is no codename.
        let stable =
            "Types: deb\nURIs: http://x/debian\nSuites: stable stable-updates\nComponents: main\n";
        assert_eq!(
            backports(&files(&[("s.sources", stable)])).unwrap().suite,
            "stable-backports"
        );
    }

    #[test]
    fn one_line_entries() {
        let list = "\
# deb cdrom:[Debian GNU/Linux 12]/ bookworm main
deb-src http://deb.debian.org/debian bookworm main
deb http://security.debian.org/debian-security bookworm-security main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main contrib
";
        let e = backports(&files(&[("/etc/apt/sources.list", list)])).unwrap();
        assert_eq!(
            e.text,
            "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
             http://deb.debian.org/debian bookworm-backports main contrib\n"
        );
        assert_eq!(e.extension, "list");
        // The first file with an entry wins.
        let e = backports(&files(&[
            ("/etc/apt/sources.list", "# empty\n"),
            ("/etc/apt/sources.list.d/debian.sources", DEBIAN_SOURCES),
        ]))
        .unwrap();
        assert_eq!(e.extension, "sources");
    }

    #[test]
    fn nothing_to_copy() {
        let e = backports(&files(&[("x.sources", DEBIAN_SRC_SOURCES)])).unwrap_err();
        assert!(e.contains("x.sources"), "{e}");
        let security =
            "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n";
        assert!(backports(&files(&[("s.sources", security)])).is_err());
        assert!(backports(&[]).unwrap_err().contains("no apt source files"));
        assert!(backports(&files(&[("l.list", "deb http://x bookworm\n")])).is_err());
    }

    #[test]
    fn apt_stays_in_its_folder() {
        let o = apt_options(Path::new("/t/apt"), Path::new("/t/apt/b.sources"), true);
        let joined = o.join(" ");
        assert!(joined.contains("-o Dir::Etc::sourcelist=/t/apt/b.sources"));
        assert!(joined.contains("-o Dir::Etc::sourceparts=/t/apt/sources.list.d"));
        assert!(joined.contains("-o Dir::State=/t/apt/state"));
        assert!(joined.contains("-o Dir::Cache=/t/apt/cache"));
        assert!(joined.contains("APT::Sandbox::User=root"));
        let o = apt_options(Path::new("/t/apt"), Path::new("/t/apt/b.sources"), false);
        assert!(!o.join(" ").contains("Sandbox"));
    }

    /// Cut from sid's real output: a virtual package with providers after
    /// an alternative group, PreDepends, a package with no dependencies.
    const DEPENDS: &str = "\
qemu-system-s390x
  Depends: libc6
  Depends: libibverbs1
  Depends: qemu-system-data
libc6
  Depends: libgcc-s1
libibverbs1
 |Depends: systemd
 |Depends: systemd-standalone-sysusers
  Depends: <systemd-sysusers>
    opensysusers
    systemd-standalone-sysusers
    systemd
  Depends: libc6
  Depends: libnl-3-200
libgcc-s1
  PreDepends: libc6
libnl-3-200
  Depends: libc6
qemu-system-data
 |Depends: debconf
  Depends: <debconf-2.0>
    cdebconf
    debconf
  Recommends: something-else
systemd
  Depends: libpam0g
<systemd-sysusers>
<debconf-2.0>
";

    #[test]
    fn dependency_graph() {
        let g = parse_depends(DEPENDS);
        assert_eq!(g.len(), 9, "{g:?}");
        let ib = &g["libibverbs1"];
        assert_eq!(ib.len(), 3, "{ib:?}");
        let names: Vec<&str> = ib[0].iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            ["systemd", "systemd-standalone-sysusers", "systemd-sysusers"]
        );
        assert!(ib[0][2].virtual_);
        assert_eq!(
            ib[0][2].providers,
            ["opensysusers", "systemd-standalone-sysusers", "systemd"]
        );
        assert_eq!(ib[1][0].name, "libc6");
        assert_eq!(g["libgcc-s1"][0][0].name, "libc6");
        // Only Depends and PreDepends count.
        assert_eq!(g["qemu-system-data"].len(), 1);
        assert!(g["debconf-2.0"].is_empty());
    }

    #[test]
    fn closure_leaves_out_maintainer_script_needs() {
        let g = parse_depends(DEPENDS);
        let c = closure(&g, "qemu-system-s390x", &EXCLUDED).unwrap();
        assert_eq!(
            c,
            [
                "qemu-system-s390x",
                "libc6",
                "libibverbs1",
                "qemu-system-data",
                "libgcc-s1",
                "libnl-3-200"
            ]
        );
        // Without exclusions: the first alternative, followed.
        let c = closure(&g, "qemu-system-s390x", &[]).unwrap();
        assert!(c.contains(&"systemd".to_string()) && c.contains(&"libpam0g".to_string()));
        assert!(!c.contains(&"opensysusers".to_string()));
        // A virtual package's first provider not excluded.
        let c = closure(
            &g,
            "libibverbs1",
            &["systemd", "systemd-standalone-sysusers"],
        )
        .unwrap();
        assert!(c.contains(&"opensysusers".to_string()), "{c:?}");
        // Something nobody provides is an error naming it.
        let g = parse_depends("a\n  Depends: <nothing>\n<nothing>\n");
        let e = closure(&g, "a", &EXCLUDED).unwrap_err();
        assert_eq!(e, "nothing provides nothing (a dependency of a)");
    }

    #[test]
    fn start_script() {
        let s = wrapper_script(
            Path::new("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
            Path::new("usr/lib/x86_64-linux-gnu"),
            "QEMU from Debian sid",
        );
        assert!(s.starts_with("#!/bin/sh\n# QEMU from Debian sid\n"), "{s}");
        assert!(
            s.contains("export QEMU_MODULE_DIR=\"$R/usr/lib/x86_64-linux-gnu/qemu\"\n"),
            "{s}"
        );
        assert!(
            s.contains(
                "exec \"$R/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\" \
                 --library-path \"$R/usr/lib/x86_64-linux-gnu\" \\\n    \
                 \"$R/usr/bin/qemu-system-s390x\" -L \"$R/usr/share/qemu\" \"$@\"\n"
            ),
            "{s}"
        );
    }

    #[test]
    fn modules_start_script() {
        let s = modules_script(
            "usr/lib/x86_64-linux-gnu",
            "QEMU from Debian bookworm-backports",
        );
        assert!(
            s.contains("export QEMU_MODULE_DIR=\"$R/usr/lib/x86_64-linux-gnu/qemu\"\n"),
            "{s}"
        );
        assert!(
            s.ends_with("exec \"$R/usr/bin/qemu-system-s390x\" -L \"$R/usr/share/qemu\" \"$@\"\n"),
            "{s}"
        );
    }

    #[test]
    fn releases() {
        assert_eq!(Release::parse("11.1"), Some(Release::V11_1));
        assert_eq!(Release::parse("10.0"), Some(Release::V10_0));
        assert_eq!(Release::parse("7.2"), None);
        assert_eq!(Release::V10_0.suite("bookworm"), "bookworm-backports");
        assert_eq!(Release::V11_1.suite("bookworm"), "sid");
        assert_eq!(Release::V11_1.dir(), "qemu-11.1");
        let e = source_entry(
            &files(&[("/etc/apt/sources.list.d/debian.sources", DEBIAN_SOURCES)]),
            |c| Release::V11_1.suite(c),
        )
        .unwrap();
        assert!(e.text.contains("Suites: sid\n"), "{}", e.text);
        assert!(e.text.contains("URIs: http://deb.debian.org/debian\n"));
    }
}
