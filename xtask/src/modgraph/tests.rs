//! The module graph on small synthetic crates held in memory.

use super::*;
use std::collections::BTreeMap;
use std::path::Path;

fn files(list: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
    list.iter()
        .map(|(p, text)| (PathBuf::from(p), text.to_string()))
        .collect()
}

fn spec(name: &str, root: &str, externs: &[&str]) -> CrateSpec {
    CrateSpec {
        name: name.into(),
        root: root.into(),
        externs: externs.iter().map(|e| e.to_string()).collect(),
    }
}

fn one_crate(list: &[(&str, &str)]) -> Result<Tree, String> {
    load(&[spec("k", "src/lib.rs", &[])], &files(list))
}

fn names(tree: &Tree) -> Vec<String> {
    let mut n: Vec<String> = (0..tree.modules.len()).map(|m| tree.name(m)).collect();
    n.sort();
    n
}

fn id(tree: &Tree, name: &str) -> ModId {
    (0..tree.modules.len())
        .find(|&m| tree.name(m) == name)
        .unwrap_or_else(|| panic!("no module {name}"))
}

fn edge_names(tree: &Tree, edges: &Edges) -> Vec<String> {
    edges
        .keys()
        .map(|&(a, b)| format!("{} -> {}", tree.name(a), tree.name(b)))
        .collect()
}

#[test]
fn the_tree_follows_mod_declarations_and_the_file_layout() {
    let tree = one_crate(&[
        (
            "src/lib.rs",
            "mod a; pub mod b; mod c { pub mod d; } \
             #[cfg(test)] mod t; #[path = \"x/y.rs\"] mod p;",
        ),
        ("src/a.rs", "mod e;"),
        ("src/a/e.rs", ""),
        ("src/b/mod.rs", "mod f;"),
        ("src/b/f.rs", ""),
        ("src/c/d.rs", ""),
        ("src/x/y.rs", "mod g;"),
        ("src/x/g.rs", ""),
    ])
    .unwrap();
    assert_eq!(
        names(&tree),
        ["k", "k::a", "k::a::e", "k::b", "k::b::f", "k::c", "k::c::d", "k::p", "k::p::g"]
    );
    // An inline module's code is in its parent's file.
    assert_eq!(
        tree.modules[id(&tree, "k::c")].file,
        Path::new("src/lib.rs")
    );
    assert_eq!(
        tree.modules[id(&tree, "k::b::f")].file,
        Path::new("src/b/f.rs")
    );
}

#[test]
fn a_missing_or_doubled_module_file_is_an_error() {
    let e = one_crate(&[("src/lib.rs", "mod a;")]).unwrap_err();
    assert!(
        e.contains("mod a: neither src/a.rs nor src/a/mod.rs"),
        "{e}"
    );
    let e = one_crate(&[
        ("src/lib.rs", "mod a;"),
        ("src/a.rs", ""),
        ("src/a/mod.rs", ""),
    ])
    .unwrap_err();
    assert!(e.contains("mod a: both"), "{e}");
    let e = one_crate(&[("src/lib.rs", "\n\nfn f( {")]).unwrap_err();
    assert!(e.starts_with("src/lib.rs:3:"), "{e}");
    assert!(one_crate(&[])
        .unwrap_err()
        .contains("cannot read src/lib.rs"));
}

#[test]
fn use_trees_are_flattened() {
    let tree = one_crate(&[(
        "src/lib.rs",
        "use crate::a::{self, b as c, d::*, e::{f, self as g}};\nuse ::x::y as _;",
    )])
    .unwrap();
    let got: Vec<(String, bool, UseKind, usize)> = tree.modules[0]
        .uses
        .iter()
        .map(|u| (u.path.join("::"), u.global, u.kind.clone(), u.line))
        .collect();
    let name = |n: &str| UseKind::Name(n.into());
    assert_eq!(
        got,
        [
            ("crate::a".into(), false, name("a"), 1),
            ("crate::a::b".into(), false, name("c"), 1),
            ("crate::a::d".into(), false, UseKind::Glob, 1),
            ("crate::a::e::f".into(), false, name("f"), 1),
            ("crate::a::e".into(), false, name("g"), 1),
            ("x::y".into(), true, name("_"), 2),
        ]
    );
}

#[test]
fn paths_in_code_and_macros_are_collected() {
    let tree = one_crate(&[(
        "src/lib.rs",
        "fn f() -> crate::a::T { core::mem::drop(1); g(); crate::out!(\"{}\", self::b::C, x.y); }\n\
         #[macro_export]\nmacro_rules! out { ($($t:tt)*) => { $crate::c::w($t::z, <T>::n) } }\n\
         #[cfg(test)] fn t() { crate::d::e(); }\n\
         #[cfg(test)] use crate::d;",
    )])
    .unwrap();
    let m = &tree.modules[0];
    let mut refs: Vec<String> = m
        .refs
        .iter()
        .filter(|r| r.path.len() > 1)
        .map(|r| format!("{}@{}", r.path.join("::"), r.line))
        .collect();
    refs.sort();
    // `$crate` reads as `crate`; `$t::z` is a macro variable, `<T>::n`
    // starts after `::`; test-only items are not read.
    assert_eq!(
        refs,
        [
            "core::mem::drop@1",
            "crate::a::T@1",
            "crate::c::w@3",
            "crate::out@1",
            "self::b::C@1"
        ]
    );
    assert!(m.uses.is_empty());
    assert_eq!(m.macros, ["out"]);
    assert_eq!(tree.crates[0].macros.get("out"), Some(&0));
}

/// Two crates: `k`, the one with layers, and `other`, which it uses.
fn two_crates() -> Tree {
    let list = [
        (
            "k/lib.rs",
            "pub use other::blocks;\npub use other::thing as renamed;\n\
             pub mod arch; pub mod runner; pub mod console; mod util;",
        ),
        ("k/arch/mod.rs", "pub mod timer; pub mod irq;"),
        (
            "k/arch/timer.rs",
            "use super::irq::Hook;\nfn f() { crate::runner::abort(); crate::out!(\"x\"); }",
        ),
        (
            "k/arch/irq.rs",
            "use crate::arch::timer;\n\
             pub fn g() { timer::now(); self::h(); crate::arch::irq::h(); core::hint::spin_loop(); }",
        ),
        (
            "k/runner.rs",
            "use crate::arch::{self, timer::Deadline};\nuse crate::blocks::Orb;\n\
             pub fn abort() { arch::irq::g(); }",
        ),
        (
            "k/console.rs",
            "#[macro_export]\nmacro_rules! out { ($($t:tt)*) => { $crate::util::w() } }",
        ),
        ("k/util.rs", "use super::*;\nfn x() { console::y(); }"),
        ("o/lib.rs", "pub mod blocks; pub mod thing;"),
        ("o/blocks.rs", "use crate::thing::X;"),
        ("o/thing.rs", ""),
    ];
    load(
        &[
            spec("k", "k/lib.rs", &["other"]),
            spec("other", "o/lib.rs", &[]),
        ],
        &files(&list),
    )
    .unwrap()
}

fn resolved(tree: &Tree, from: &str, path: &str) -> Option<String> {
    let segments: Vec<String> = path
        .trim_start_matches("::")
        .split("::")
        .map(String::from)
        .collect();
    tree.resolve(id(tree, from), &segments, path.starts_with("::"))
        .map(|t| {
            format!(
                "{}{}",
                tree.name(t.module),
                if t.exact { "" } else { " (item)" }
            )
        })
}

#[test]
fn a_path_names_its_longest_module_prefix() {
    let t = two_crates();
    let r = |from, path| resolved(&t, from, path);
    assert_eq!(
        r("k::runner", "crate::arch::timer").as_deref(),
        Some("k::arch::timer")
    );
    assert_eq!(
        r("k::runner", "crate::arch::timer::Deadline::new").as_deref(),
        Some("k::arch::timer (item)")
    );
    assert_eq!(
        r("k::runner", "crate::nothing::x").as_deref(),
        Some("k (item)")
    );
    assert_eq!(
        r("k::arch::timer", "super::irq::Hook").as_deref(),
        Some("k::arch::irq (item)")
    );
    assert_eq!(
        r("k::arch::timer", "super::super::runner").as_deref(),
        Some("k::runner")
    );
    assert_eq!(
        r("k::arch::irq", "self::h").as_deref(),
        Some("k::arch::irq (item)")
    );
    // A name a `use` bound, a child, a name a glob brought in.
    assert_eq!(
        r("k::arch::irq", "timer::now").as_deref(),
        Some("k::arch::timer (item)")
    );
    assert_eq!(
        r("k::runner", "arch::irq::g").as_deref(),
        Some("k::arch::irq (item)")
    );
    assert_eq!(r("k", "arch::irq").as_deref(), Some("k::arch::irq"));
    assert_eq!(
        r("k::util", "console::y").as_deref(),
        Some("k::console (item)")
    );
    // Through re-exports into the other crate, under their own names or new ones.
    assert_eq!(
        r("k::runner", "crate::blocks::Orb").as_deref(),
        Some("other::blocks (item)")
    );
    assert_eq!(
        r("k::runner", "crate::renamed").as_deref(),
        Some("other::thing")
    );
    assert_eq!(
        r("k::runner", "::other::thing::X").as_deref(),
        Some("other::thing (item)")
    );
    // A macro exported at the root names the module defining it.
    assert_eq!(
        r("k::arch::timer", "crate::out").as_deref(),
        Some("k::console (item)")
    );
    assert_eq!(
        r("k::console", "$crate::util::w").as_deref(),
        Some("k::util (item)")
    );
    // Nothing of ours: std's crates, locals, crates not depended on.
    assert_eq!(r("k::arch::irq", "core::hint::spin_loop"), None);
    assert_eq!(
        r("k::runner", "Deadline::new").as_deref(),
        Some("k::arch::timer (item)")
    );
    assert_eq!(r("k::runner", "Local::new"), None);
    assert_eq!(r("other::blocks", "k::runner"), None);
    assert_eq!(r("k", "super::x"), None);
}

#[test]
fn a_use_that_names_itself_does_not_loop() {
    let tree = one_crate(&[(
        "src/lib.rs",
        "use a::b as a;\nuse c as c;\nfn f() { a::x(); c::y(); }",
    )])
    .unwrap();
    assert!(edges(&tree).is_empty());
}

fn layer() -> Layer {
    Layer {
        krate: "k".into(),
        path: vec!["arch".into()],
    }
}

#[test]
fn edges_cycles_and_layer_breaks() {
    let t = two_crates();
    let e = edges(&t);
    assert_eq!(
        edge_names(&t, &e),
        [
            "k -> other::blocks",
            "k -> other::thing",
            "k::arch::timer -> k::arch::irq",
            "k::arch::timer -> k::runner",
            "k::arch::timer -> k::console",
            "k::arch::irq -> k::arch::timer",
            "k::runner -> k::arch",
            "k::runner -> k::arch::timer",
            "k::runner -> k::arch::irq",
            "k::runner -> other::blocks",
            "k::console -> k::util",
            "k::util -> k",
            "k::util -> k::console",
            "other::blocks -> other::thing",
        ]
    );
    // Where an edge comes from: every place, as written.
    let sites = &e[&(id(&t, "k::arch::irq"), id(&t, "k::arch::timer"))];
    let at: Vec<String> = sites
        .iter()
        .map(|s| format!("{}:{} {}", s.file.display(), s.line, s.path))
        .collect();
    assert_eq!(
        at,
        [
            "k/arch/irq.rs:1 crate::arch::timer",
            "k/arch/irq.rs:2 timer::now"
        ]
    );

    let f = check(&t, &e, &layer());
    let cycles: Vec<Vec<String>> = f
        .cycles
        .iter()
        .map(|c| c.iter().map(|&m| t.name(m)).collect())
        .collect();
    assert_eq!(
        cycles,
        [
            vec!["k::arch::irq", "k::arch::timer", "k::runner"],
            // `mod util;` in k is no edge: util naming its parent makes no cycle.
            vec!["k::console", "k::util"],
        ]
    );
    let breaks: Vec<String> = f
        .layer_breaks
        .iter()
        .map(|&(a, b)| format!("{} -> {}", t.name(a), t.name(b)))
        .collect();
    assert_eq!(
        breaks,
        [
            "k::arch::timer -> k::runner",
            "k::arch::timer -> k::console"
        ]
    );
    assert!(!f.is_clean());

    let text = report(&t, &e, &layer(), &f);
    assert!(
        text.starts_with(
            "module graph: 2 cycle(s); 2 edge(s) from k::arch to modules outside it\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("cycle 1 of 2: 3 modules: k::arch::irq, k::arch::timer, k::runner\n"),
        "{text}"
    );
    assert!(
        text.contains("  e.g. k::arch::irq -> k::arch::timer -> k::arch::irq\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "  k::arch::timer -> k::runner\n    k/arch/timer.rs:2 (crate::runner::abort)\n"
        ),
        "{text}"
    );
    let s = summary(&t, &e);
    assert!(
        s.starts_with("module graph: 10 modules in 2 crates, 14 edges\n"),
        "{s}"
    );
    assert!(s.contains("  other::thing -> (nothing)\n"), "{s}");
}

#[test]
fn a_layered_acyclic_crate_is_clean() {
    let tree = one_crate(&[
        (
            "src/lib.rs",
            "pub mod arch; pub mod runner; pub use zvtest_contract as c;",
        ),
        ("src/arch/mod.rs", "pub mod timer;\npub fn tod() {}"),
        // Naming its own items and its parent inside arch/ is fine.
        (
            "src/arch/timer.rs",
            "use super::tod;\nfn f() { self::g(); crate::arch::timer::g(); }",
        ),
        (
            "src/runner.rs",
            "use crate::arch::{self, timer};\nfn r() { arch::tod(); }",
        ),
    ])
    .unwrap();
    let e = edges(&tree);
    let f = check(&tree, &e, &layer());
    assert_eq!(f, Findings::default());
    assert!(f.is_clean());
    assert_eq!(
        report(&tree, &e, &layer(), &f),
        "module graph: 0 cycle(s); 0 edge(s) from k::arch to modules outside it\n"
    );
}

#[test]
fn the_firmware_is_read() {
    // The real crates parse and have the modules the layer rule is about.
    let (specs, layer) = firmware();
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tree = load(&specs, &Files { base }).unwrap();
    assert!(tree.modules.len() > 20);
    let arch = (0..tree.modules.len()).find(|&m| tree.is_under(m, &layer.krate, &layer.path));
    assert!(arch.is_some());
}
