//! Boot scenarios that must PASS: default, more memory and CPUs, the raw
//! image, and a test selection.

mod common;

use common::{assert_pass, boot, check, elf, img, scenario};

#[test]
fn default_boot() {
    let o = boot(&scenario("default"), &elf());
    assert_pass(&o);
    check(&o, o.tap.results.len() >= 5, "at least 5 results");
    check(
        &o,
        o.time_to_tap.is_some(),
        "the time to the first TAP line",
    );
    check(
        &o,
        o.time_to_tap.is_some_and(|t| t <= o.duration),
        "the first TAP line within the run",
    );
}

#[test]
fn more_memory_and_cpus() {
    // The firmware compares expect-mem=512M with what SCLP reports.
    let o = boot(&scenario("mem512-smp2").memory_mib(512).smp(2), &elf());
    assert_pass(&o);
}

#[test]
fn raw_image() {
    let o = boot(&scenario("raw-image"), &img());
    assert_pass(&o);
    check(&o, o.tap.results.len() >= 5, "at least 5 results");
}

#[test]
fn only_selects_a_subset() {
    let o = boot(&scenario("only-boot").append("only=boot.*"), &elf());
    assert_pass(&o);
    check(&o, !o.tap.results.is_empty(), "some boot.* results");
    let stray: Vec<&str> = o
        .tap
        .results
        .iter()
        .map(|r| r.name.as_str())
        .filter(|n| !n.starts_with("boot."))
        .collect();
    check(
        &o,
        stray.is_empty(),
        &format!("only boot.* results, not {stray:?}"),
    );
}

#[test]
fn line_mode_console() {
    // The SCLP line-mode console, as z/VM and LPAR operators see it: the
    // firmware writes EBCDIC message events, QEMU turns them into lines.
    let o = boot(
        &scenario("line-mode-console").line_mode_console(true),
        &elf(),
    );
    assert_pass(&o);
    check(&o, o.tap.results.len() >= 5, "at least 5 results");
}
