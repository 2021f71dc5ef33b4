//! What a new machine lacks, added by the commands that need it.
//!
//! - The Rust target: rustup installs the `targets` of rust-toolchain.toml
//!   only together with the toolchain, so a machine that already had the
//!   toolchain lacks `s390x-unknown-linux-gnu`; we run `rustup target add`
//!   for the toolchain in use (rustup passes it on in RUSTUP_TOOLCHAIN;
//!   from the workspace folder rust-toolchain.toml names it otherwise).
//! - Debian packages: QEMU, the s390x cross gcc and Hercules, through apt
//!   when we are root; otherwise the command to run is shown.

use crate::cmd;
use std::env;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// rustup's download of the target's standard library.
const RUSTUP_LIMIT: Duration = Duration::from_secs(15 * 60);
const APT_LIMIT: Duration = Duration::from_secs(30 * 60);
/// `rustup target list` and the like only read local files.
const QUICK_LIMIT: Duration = Duration::from_secs(60);

/// The targets in `rustup target list --installed` output: one per line.
/// (A plain `rustup target list` marks installed ones `(installed)`; only
/// those are taken from such output.)
pub fn installed_targets(output: &str) -> Vec<&str> {
    output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter_map(|l| match l.split_once(' ') {
            None => Some(l),
            Some((t, rest)) if rest.trim() == "(installed)" => Some(t),
            Some(_) => None,
        })
        .collect()
}

/// The toolchain rustup will use here, for messages.
fn toolchain_in_use() -> String {
    match env::var("RUSTUP_TOOLCHAIN") {
        Ok(t) if !t.is_empty() => format!("toolchain {t}"),
        _ => "the toolchain of rust-toolchain.toml".into(),
    }
}

/// Makes sure the toolchain that builds the firmware has `target`.
pub fn rust_target(root: &Path, target: &str) -> Result<(), String> {
    let add = format!("rustup target add {target}");
    let Some(rustup) = crate::find_program(OsStr::new("rustup")) else {
        // Without rustup, a toolchain may still carry the target: ask rustc.
        if rustc_has_target(root, target) {
            return Ok(());
        }
        return Err(format!(
            "the Rust target {target} is not installed and there is no rustup to add it: \
             install rustup (https://rustup.rs), then run\n  {add}\n\
             in {} (or use a Rust toolchain that has the target)",
            root.display()
        ));
    };
    let list = || -> Result<bool, String> {
        let mut c = Command::new(&rustup);
        c.args(["target", "list", "--installed"]).current_dir(root);
        let out = cmd::output_within(c, "listing the installed Rust targets", QUICK_LIMIT)?;
        Ok(installed_targets(&String::from_utf8_lossy(&out.stdout)).contains(&target))
    };
    if list()? {
        return Ok(());
    }
    eprintln!(
        "xtask: installing the Rust target {target} ({add}) for {}: the firmware is built for it",
        toolchain_in_use()
    );
    let mut c = Command::new(&rustup);
    c.args(["target", "add", target]).current_dir(root);
    cmd::status_within(c, "adding the Rust target", RUSTUP_LIMIT).map_err(|e| {
        format!(
            "{e}\nrun it yourself in {} (network access to the Rust distribution server is needed):\n  {add}",
            root.display()
        )
    })?;
    if list()? {
        Ok(())
    } else {
        Err(format!(
            "`{add}` succeeded but `rustup target list --installed` still lacks {target}"
        ))
    }
}

/// Does `rustc --print target-libdir --target <target>` hold the prebuilt `core`?
fn rustc_has_target(root: &Path, target: &str) -> bool {
    let mut c = Command::new(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    c.args(["--print", "target-libdir", "--target", target])
        .current_dir(root);
    let Ok(out) = cmd::output_within(c, "rustc --print target-libdir", QUICK_LIMIT) else {
        return false;
    };
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    std::fs::read_dir(dir).is_ok_and(|d| {
        d.filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
    })
}

/// A program the project runs and the Debian package that has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
    /// Why we need it.
    pub why: &'static str,
}

pub const QEMU: Tool = Tool {
    program: "qemu-system-s390x",
    package: "qemu-system-misc",
    why: "QEMU, boots the firmware",
};
pub const CROSS_GCC: Tool = Tool {
    program: "s390x-linux-gnu-gcc",
    package: "gcc-s390x-linux-gnu",
    why: "the s390x cross gcc, assembles boot/*.S",
};
pub const HERCULES: Tool = Tool {
    program: "hercules",
    package: "hercules",
    why: "the Hercules emulator, for the ESA/390 card-reader IPL test",
};
pub const XMLLINT: Tool = Tool {
    program: "xmllint",
    package: "libxml2-utils",
    why: "xmllint, validates the JUnit reports against qemu-runner/tests/junit.xsd",
};

/// The packages that bring the `tools` for which `present` says no, once
/// each, in order.
pub fn missing<'a>(tools: &[&'a Tool], present: impl Fn(&str) -> bool) -> Vec<&'a Tool> {
    let mut out: Vec<&Tool> = Vec::new();
    for t in tools {
        if !present(t.program) && !out.iter().any(|o| o.package == t.package) {
            out.push(t);
        }
    }
    out
}

/// `qemu-system-misc (QEMU, boots the firmware), ...`
pub fn describe(tools: &[&Tool]) -> String {
    tools
        .iter()
        .map(|t| format!("{} ({})", t.package, t.why))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The apt command that installs `tools`.
pub fn apt_command(tools: &[&Tool]) -> String {
    let names: Vec<&str> = tools.iter().map(|t| t.package).collect();
    format!(
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y {}",
        names.join(" ")
    )
}

/// Installs the packages of the `tools` that are not on PATH: with apt
/// when we are root, else the error says what to run.
pub fn packages(tools: &[&Tool], root: bool) -> Result<(), String> {
    let present = |p: &str| crate::find_program(OsStr::new(p)).is_some();
    let absent = missing(tools, present);
    if absent.is_empty() {
        return Ok(());
    }
    let install = apt_command(&absent);
    if !root {
        return Err(format!(
            "missing {}; install with (as root):\n  {install}",
            describe(&absent)
        ));
    }
    eprintln!(
        "xtask: installing Debian packages: {}\nxtask: running {install}",
        describe(&absent)
    );
    let mut update = Command::new("apt-get");
    update.arg("update");
    cmd::status_within(update, "apt-get update", APT_LIMIT)
        .map_err(|e| format!("{e}\nas root, run:\n  {install}"))?;
    let mut get = Command::new("apt-get");
    get.args(["install", "-y"])
        .args(absent.iter().map(|t| t.package))
        .env("DEBIAN_FRONTEND", "noninteractive");
    cmd::status_within(get, "apt-get install", APT_LIMIT)
        .map_err(|e| format!("{e}\nas root, run:\n  {install}"))?;
    let still = missing(tools, present);
    if still.is_empty() {
        Ok(())
    } else {
        let names: Vec<&str> = still.iter().map(|t| t.program).collect();
        Err(format!(
            "still not on PATH after apt-get install: {}",
            names.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustup_target_lists() {
        let installed = "s390x-unknown-linux-gnu\nx86_64-unknown-linux-gnu\n";
        assert_eq!(
            installed_targets(installed),
            ["s390x-unknown-linux-gnu", "x86_64-unknown-linux-gnu"]
        );
        // A new machine: only the host.
        assert!(
            !installed_targets("x86_64-unknown-linux-gnu\n").contains(&"s390x-unknown-linux-gnu")
        );
        assert!(installed_targets("").is_empty());
        // The long list marks what is installed.
        let all = "\
riscv64gc-unknown-linux-gnu
s390x-unknown-linux-gnu (installed)
x86_64-unknown-linux-gnu (installed)
";
        assert_eq!(
            installed_targets(all),
            [
                "riscv64gc-unknown-linux-gnu",
                "s390x-unknown-linux-gnu",
                "x86_64-unknown-linux-gnu"
            ]
        );
        // Stray words are not targets; blank lines and spaces are ignored.
        assert_eq!(
            installed_targets("  \n  s390x-unknown-linux-gnu  \nerror: something\n"),
            ["s390x-unknown-linux-gnu"]
        );
    }

    #[test]
    fn apt_packages_for_missing_programs() {
        let all = [&QEMU, &CROSS_GCC, &HERCULES];
        assert!(missing(&all, |_| true).is_empty());
        // A new machine: everything.
        let m = missing(&all, |_| false);
        assert_eq!(m, [&QEMU, &CROSS_GCC, &HERCULES]);
        assert_eq!(
            apt_command(&m),
            "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
             qemu-system-misc gcc-s390x-linux-gnu hercules"
        );
        // Only what is missing, and each package once.
        let m = missing(&all, |p| p != "hercules");
        assert_eq!(m, [&HERCULES]);
        assert!(apt_command(&m).ends_with("install -y hercules"));
        let twice = [&QEMU, &QEMU, &CROSS_GCC];
        assert_eq!(missing(&twice, |p| p == "s390x-linux-gnu-gcc"), [&QEMU]);
        assert_eq!(
            describe(&[&CROSS_GCC]),
            "gcc-s390x-linux-gnu (the s390x cross gcc, assembles boot/*.S)"
        );
    }
}
