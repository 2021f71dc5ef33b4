//! `cargo xtask qemu10`: QEMU 10.0 beside the system's 7.2, without
//! touching the system.
//!
//! Debian has QEMU 10.0 for bookworm in `bookworm-backports`
//! (`qemu-system-s390x` and its data files in `qemu-system-data`).
//! Installing it through apt would replace 7.2, so instead:
//!
//! 1. the machine's own Debian source entry is copied with only the suite
//!    changed to `<codename>-backports` (nothing new is hard-coded: same
//!    mirror, components and key), into a private apt configuration;
//! 2. `apt-get update` and `apt-get download` run with `Dir::Etc`,
//!    `Dir::State` and `Dir::Cache` pointing into that folder, so the
//!    system's sources, package lists and cache stay as they are;
//! 3. the two packages are unpacked with `dpkg -x` into `target/qemu-10.0/`.
//!
//! The binary is then `target/qemu-10.0/usr/bin/qemu-system-s390x` and its
//! data directory (`-L`) `target/qemu-10.0/usr/share/qemu`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The folder under the target directory.
pub const DIR: &str = "qemu-10.0";
/// The version the folder is for.
pub const VERSION: (u16, u16) = (10, 0);
const PACKAGES: [&str; 2] = ["qemu-system-s390x", "qemu-system-data"];
/// Where the machine's apt sources are.
const SOURCES_LIST: &str = "/etc/apt/sources.list";
const SOURCES_DIR: &str = "/etc/apt/sources.list.d";

/// An unpacked QEMU: binary, data directory and the version it reports.
#[derive(Debug, Clone)]
pub struct Qemu {
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    pub version: qemu_runner::QemuVersion,
}

impl Qemu {
    fn at(root: &Path) -> (PathBuf, PathBuf) {
        (
            root.join("usr/bin/qemu-system-s390x"),
            root.join("usr/share/qemu"),
        )
    }

    /// The QEMU unpacked under `root`, if it is there and answers `--version`.
    fn find(root: &Path) -> Option<Qemu> {
        let (binary, data_dir) = Qemu::at(root);
        if !binary.is_file() || !data_dir.join("s390-ccw.img").is_file() {
            return None;
        }
        let version = qemu_runner::detect_qemu_version(&binary).ok()?;
        Some(Qemu {
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
    /// The suite it names (`bookworm-backports`).
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

/// The backports entry made from the first binary (`deb`) Debian entry
/// naming a release codename, in `files` (name, content): deb822
/// `.sources` files and one-line `.list` files (or `sources.list`).
/// Everything of that entry is kept but its suites, which become the one
/// `<codename>-backports`; comments are dropped.
pub fn backports_entry(files: &[(String, String)]) -> Result<SourceEntry, String> {
    for (name, content) in files {
        let found = if name.ends_with(".sources") {
            deb822_backports(content)
        } else {
            one_line_backports(content)
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
fn deb822_backports(content: &str) -> Option<(String, String, &'static str)> {
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
        let suite = format!("{codename}-backports");
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
fn one_line_backports(content: &str) -> Option<(String, String, &'static str)> {
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
        let suite = format!("{codename}-backports");
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

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    eprintln!("xtask: qemu10: {what}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// QEMU 10.0 in `<target>/qemu-10.0`: the one there if it works, else
/// downloaded and unpacked afresh (into a side folder first, so an
/// interrupted download never leaves a half QEMU behind).
pub fn ensure(target: &Path, root: bool) -> Result<Qemu, String> {
    let dir = target.join(DIR);
    if let Some(q) = Qemu::find(&dir) {
        return Ok(q);
    }
    let entry = backports_entry(&machine_sources())?;
    eprintln!(
        "xtask: qemu10: {} {} from {} (suite {}), unpacked into {}",
        PACKAGES[0],
        PACKAGES[1],
        entry.origin,
        entry.suite,
        dir.display()
    );
    let partial = target.join(format!("{DIR}.partial"));
    let _ = fs::remove_dir_all(&partial);
    let apt_dir = partial.join("apt");
    let debs = partial.join("debs");
    for d in [
        apt_dir.join("sources.list.d"),
        apt_dir.join("preferences.d"),
        apt_dir.join("state/lists/partial"),
        apt_dir.join("cache/archives/partial"),
        debs.clone(),
    ] {
        fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let sourcelist = apt_dir.join(format!("backports.{}", entry.extension));
    fs::write(&sourcelist, &entry.text)
        .map_err(|e| format!("cannot write {}: {e}", sourcelist.display()))?;
    let options = apt_options(&apt_dir, &sourcelist, root);

    let mut update = Command::new("apt-get");
    update.args(&options).arg("update");
    run(
        update,
        &format!("apt-get update (private lists, {})", entry.suite),
    )?;
    let mut download = Command::new("apt-get");
    download
        .args(&options)
        .args(["-t", &entry.suite, "download"])
        .args(PACKAGES)
        .current_dir(&debs);
    run(
        download,
        &format!("apt-get download {}", PACKAGES.join(" ")),
    )?;
    let mut files: Vec<PathBuf> = fs::read_dir(&debs)
        .map_err(|e| format!("cannot list {}: {e}", debs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    files.sort();
    for p in PACKAGES {
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
    for deb in &files {
        let mut x = Command::new("dpkg");
        x.arg("-x").arg(deb).arg(&partial);
        run(x, &format!("dpkg -x {}", deb.display()))?;
    }
    let q = Qemu::find(&partial).ok_or_else(|| {
        let (binary, data) = Qemu::at(&partial);
        format!(
            "the unpacked QEMU does not work: {} (data {}); try {} --version",
            binary.display(),
            data.display(),
            binary.display()
        )
    })?;
    if (q.version.major, q.version.minor) != VERSION {
        eprintln!(
            "xtask: qemu10: warning: {} holds QEMU {}, not {}.{}",
            entry.suite,
            q.version.full(),
            VERSION.0,
            VERSION.1
        );
    }
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&partial, &dir).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            dir.display()
        )
    })?;
    Qemu::find(&dir)
        .ok_or_else(|| format!("QEMU in {} stopped working after the move", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let e = backports_entry(&files(&[
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
        let e = backports_entry(&files(&[("a.sources", text)])).unwrap();
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
            backports_entry(&files(&[("s.sources", stable)]))
                .unwrap()
                .suite,
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
        let e = backports_entry(&files(&[("/etc/apt/sources.list", list)])).unwrap();
        assert_eq!(
            e.text,
            "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
             http://deb.debian.org/debian bookworm-backports main contrib\n"
        );
        assert_eq!(e.extension, "list");
        // The first file with an entry wins.
        let e = backports_entry(&files(&[
            ("/etc/apt/sources.list", "# empty\n"),
            ("/etc/apt/sources.list.d/debian.sources", DEBIAN_SOURCES),
        ]))
        .unwrap();
        assert_eq!(e.extension, "sources");
    }

    #[test]
    fn nothing_to_copy() {
        let e = backports_entry(&files(&[("x.sources", DEBIAN_SRC_SOURCES)])).unwrap_err();
        assert!(e.contains("x.sources"), "{e}");
        let security =
            "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n";
        assert!(backports_entry(&files(&[("s.sources", security)])).is_err());
        assert!(backports_entry(&[])
            .unwrap_err()
            .contains("no apt source files"));
        assert!(backports_entry(&files(&[("l.list", "deb http://x bookworm\n")])).is_err());
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
}
