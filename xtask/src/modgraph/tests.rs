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
        "fn f() -> crate::a::T { core::mem::drop(1); g(); \
         crate::out!(\"{}\", self::b::C, x.y, ::o::p::Q, <T>::n, use ::o::r); }\n\
         #[macro_export]\nmacro_rules! out { ($($t:tt)*) => { $crate::c::w($t::z, <T>::n, ::o::s) } }\n\
         #[cfg(test)] fn t() { crate::d::e(); }\n\
         #[cfg(test)] use crate::d;\n\
         fn q() { <T as crate::e::Tr>::f(); <T>::g(); }",
    )])
    .unwrap();
    let text = |r: &Ref| {
        format!(
            "{}{}{}@{}",
            if r.global { "::" } else { "" },
            r.path.join("::"),
            if r.call { "!" } else { "" },
            r.line
        )
    };
    let m = &tree.modules[0];
    let mut refs: Vec<String> = m
        .refs
        .iter()
        .filter(|r| r.path.len() > 1 || r.global)
        .map(text)
        .collect();
    refs.sort();
    // `::`-rooted paths in macro tokens are kept (after a keyword too);
    // `<T>::n` starts after `::` and `<T>::g` names nothing by path;
    // test-only items are not read; the macro's body is not the module's.
    assert_eq!(
        refs,
        [
            "::o::p::Q@1",
            "::o::r@1",
            "core::mem::drop@1",
            "crate::a::T@1",
            "crate::e::Tr@6",
            "crate::out!@1",
            "self::b::C@1",
        ]
    );
    assert!(m.uses.is_empty());
    assert_eq!(m.macros, ["out"]);
    assert_eq!(tree.crates[0].macros.get("out"), Some(&0));
    // The body, with `$crate` as written; `$t::z` is a macro variable.
    let body: Vec<String> = m.macro_defs[0]
        .body
        .iter()
        .filter(|r| r.path.len() > 1 || r.global)
        .map(text)
        .collect();
    assert_eq!(body, ["$crate::c::w@3", "::o::s@3"]);
    assert!(m.items.contains("out") && m.items.contains("q"));
    assert!(!m.items.contains("t"));
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

/// Where `path`, written in `from`, leads: the module (`(item)` when it
/// names an item of it), then ` via` each other module whose `use` it went
/// through.
fn resolved(tree: &Tree, from: &str, path: &str) -> Option<String> {
    resolved_in(tree, from, path, Ns::Any)
}

fn resolved_in(tree: &Tree, from: &str, path: &str, ns: Ns) -> Option<String> {
    let segments: Vec<String> = path
        .trim_start_matches("::")
        .split("::")
        .map(String::from)
        .collect();
    let from = id(tree, from);
    tree.resolve(from, &segments, path.starts_with("::"), ns)
        .map(|r| {
            let mut text = tree.name(r.target.module);
            if !r.target.exact {
                text.push_str(" (item)");
            }
            for &v in r.via.iter().filter(|&&v| v != from && v != r.target.module) {
                text.push_str(" via ");
                text.push_str(&tree.name(v));
            }
            text
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
    // ... and through the root that re-exports them.
    assert_eq!(
        r("k::runner", "crate::blocks::Orb").as_deref(),
        Some("other::blocks (item) via k")
    );
    assert_eq!(
        r("k::runner", "crate::renamed").as_deref(),
        Some("other::thing via k")
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
            // `crate::out!` names the macro console defines, and its body
            // (`$crate::util::w`) is timer's code: console has no edge.
            "k::arch::timer -> k::console",
            "k::arch::timer -> k::util",
            "k::arch::irq -> k::arch::timer",
            // `crate::blocks::Orb` goes through the root's `pub use`.
            "k::runner -> k",
            "k::runner -> k::arch",
            "k::runner -> k::arch::timer",
            "k::runner -> k::arch::irq",
            "k::runner -> other::blocks",
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
    let expanded = &e[&(id(&t, "k::arch::timer"), id(&t, "k::util"))];
    assert_eq!(expanded[0].path, "crate::out! expands to $crate::util::w");
    let through = &e[&(id(&t, "k::runner"), id(&t, "k"))];
    assert_eq!(through[0].path, "crate::blocks::Orb, through a use there");

    let f = check(&t, &e, &layer());
    let cycles: Vec<Vec<String>> = f
        .cycles
        .iter()
        .map(|c| c.iter().map(|&m| t.name(m)).collect())
        .collect();
    // `mod util;` in k is no edge: util naming its parent makes no cycle.
    assert_eq!(
        cycles,
        [vec!["k::arch::irq", "k::arch::timer", "k::runner"]]
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
            "k::arch::timer -> k::console",
            "k::arch::timer -> k::util",
        ]
    );
    assert!(!f.is_clean());

    let text = report(&t, &e, &layer(), &f);
    assert!(
        text.starts_with(
            "module graph: 1 cycle(s); 3 edge(s) from k::arch to modules outside it; \
             0 other finding(s)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("cycle 1 of 1: 3 modules: k::arch::irq, k::arch::timer, k::runner\n"),
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
    assert!(
        text.contains(
            "  k::arch::timer -> k::util\n    \
             k/arch/timer.rs:2 (crate::out! expands to $crate::util::w)\n"
        ),
        "{text}"
    );
    let s = summary(&t, &e);
    assert!(
        s.starts_with("module graph: 10 modules in 2 crates, 15 edges\n"),
        "{s}"
    );
    assert!(s.contains("  other::thing -> (nothing)\n"), "{s}");
    assert!(s.contains("  k::console -> (nothing)\n"), "{s}");
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
        "module graph: 0 cycle(s); 0 edge(s) from k::arch to modules outside it; \
         0 other finding(s)\n"
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

/// Crate `k` (layer `k::arch`), with crate `other` when `o` has its files.
struct Graph {
    tree: Tree,
    edges: Edges,
    findings: Findings,
}

fn graph(k: &[(&str, &str)], o: &[(&str, &str)]) -> Graph {
    let mut list = k.to_vec();
    list.extend_from_slice(o);
    let mut specs = vec![spec("k", "src/lib.rs", &["other"])];
    if !o.is_empty() {
        specs.push(spec("other", "o/lib.rs", &[]));
    }
    let tree = load(&specs, &files(&list)).unwrap();
    let edges = edges(&tree);
    let findings = check(&tree, &edges, &layer());
    Graph {
        tree,
        edges,
        findings,
    }
}

/// `other`: a module defining an exported macro whose body names another.
const OTHER: &[(&str, &str)] = &[
    ("o/lib.rs", "pub mod fmt; pub mod buf;"),
    (
        "o/fmt.rs",
        "#[macro_export]\nmacro_rules! fmt { () => { $crate::buf::B::new() } }",
    ),
    ("o/buf.rs", "pub struct B;"),
];

impl Graph {
    /// The modules `m` has an edge to, by name.
    fn from(&self, m: &str) -> Vec<String> {
        let m = id(&self.tree, m);
        let mut to: Vec<String> = self
            .edges
            .keys()
            .filter(|(a, _)| *a == m)
            .map(|&(_, b)| self.tree.name(b))
            .collect();
        to.sort();
        to
    }

    fn cycles(&self) -> Vec<Vec<String>> {
        let t = &self.tree;
        self.findings
            .cycles
            .iter()
            .map(|c| c.iter().map(|&m| t.name(m)).collect())
            .collect()
    }

    fn breaks(&self) -> Vec<String> {
        let t = &self.tree;
        let mut b: Vec<String> = self
            .findings
            .layer_breaks
            .iter()
            .map(|&(a, b)| format!("{} -> {}", t.name(a), t.name(b)))
            .collect();
        b.sort();
        b
    }

    fn sites(&self, a: &str, b: &str) -> Vec<String> {
        self.edges[&(id(&self.tree, a), id(&self.tree, b))]
            .iter()
            .map(|s| format!("{}:{} {}", s.file.display(), s.line, s.path))
            .collect()
    }

    fn notes(&self, list: &[(ModId, Note)]) -> Vec<String> {
        list.iter()
            .map(|(m, n)| {
                let file = self.tree.modules[*m].file.display();
                format!("{} {file}:{} {}", self.tree.name(*m), n.line, n.what)
            })
            .collect()
    }

    fn report(&self) -> String {
        report(&self.tree, &self.edges, &layer(), &self.findings)
    }
}

#[test]
fn a_parent_re_exporting_a_child_that_imports_through_it_is_a_cycle() {
    // The contract's tap/: `pub use read::*` in tap, `use super::Tally`
    // (a name tap re-exports from tap::write) in tap::read.
    let tap = |read| {
        graph(
            &[
                ("src/lib.rs", "pub mod tap; pub mod verdict;"),
                (
                    "src/tap/mod.rs",
                    "pub mod read;\npub mod write;\n\npub use read::*;\npub use write::{Tally, TapWriter};",
                ),
                ("src/tap/read.rs", read),
                ("src/tap/write.rs", "pub struct Tally;\npub struct TapWriter;"),
                ("src/verdict.rs", "use crate::tap::{Directive, Tally};"),
            ],
            &[],
        )
    };
    let g = tap("use super::Tally;\npub struct Directive;");
    assert_eq!(g.from("k::tap"), ["k::tap::read", "k::tap::write"]);
    assert_eq!(g.from("k::tap::read"), ["k::tap", "k::tap::write"]);
    // Through the facade to where each name is defined.
    assert_eq!(
        g.from("k::verdict"),
        ["k::tap", "k::tap::read", "k::tap::write"]
    );
    assert_eq!(g.cycles(), [vec!["k::tap", "k::tap::read"]]);
    let text = g.report();
    assert!(
        text.contains("  k::tap -> k::tap::read: src/tap/mod.rs:4 (read::*)\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "  k::tap::read -> k::tap: src/tap/read.rs:1 (super::Tally, through a use there)\n"
        ),
        "{text}"
    );
    // Imported from the module that defines it: no cycle.
    let g = tap("use super::write::Tally;\npub struct Directive;");
    assert_eq!(g.from("k::tap::read"), ["k::tap::write"]);
    assert!(g.findings.is_clean(), "{}", g.report());
}

#[test]
fn a_facade_does_not_hide_a_layer_break() {
    // arch::x names arch::y's T through a module outside arch that
    // re-exports it.
    let arch = |lib, x| {
        graph(
            &[
                ("src/lib.rs", lib),
                ("src/arch/mod.rs", "pub mod x;\npub mod y;"),
                ("src/arch/x.rs", x),
                ("src/arch/y.rs", "pub struct T;"),
                (
                    "src/facade.rs",
                    "pub use crate::arch::y::T;\npub use crate::arch::y as why;",
                ),
            ],
            &[],
        )
    };
    let lib = "pub mod arch; pub mod facade;";
    for x in [
        "use crate::facade::T;",
        "fn f() { crate::facade::T::new(); }",
        "use crate::facade::why::T;",
        "use crate::facade::why;\nfn f() { why::T::new(); }",
    ] {
        let g = arch(lib, x);
        assert_eq!(g.from("k::arch::x"), ["k::arch::y", "k::facade"], "{x}");
        assert_eq!(g.breaks(), ["k::arch::x -> k::facade"], "{x}");
        assert!(g.cycles().is_empty(), "{x}");
    }
    let text = arch(lib, "use crate::facade::T;").report();
    assert!(
        text.contains(
            "k::arch names modules outside it:\n  k::arch::x -> k::facade\n    \
             src/arch/x.rs:1 (crate::facade::T, through a use there)\n"
        ),
        "{text}"
    );
    // Two re-exports deep: each is a dependency.
    let g = arch(
        "pub mod arch; pub mod facade;\npub use facade::T;",
        "use crate::T;",
    );
    assert_eq!(g.from("k::arch::x"), ["k", "k::arch::y", "k::facade"]);
    assert_eq!(g.breaks(), ["k::arch::x -> k", "k::arch::x -> k::facade"]);
    // From the module that defines it: clean.
    let g = arch(lib, "use super::y::T;");
    assert!(g.findings.is_clean(), "{}", g.report());
}

#[test]
fn a_macro_body_is_code_of_each_module_that_invokes_it() {
    let g = graph(
        &[
            (
                "src/lib.rs",
                "pub mod arch; pub mod runner; pub mod console; pub mod low; \
                 pub mod z; pub mod mac; pub mod user;",
            ),
            // `up!` is exported; `inner!` is in textual scope in low and
            // the modules it declares.
            (
                "src/low.rs",
                "#[macro_export]\nmacro_rules! up { () => { $crate::runner::go() } }\n\
                 macro_rules! inner { () => { $crate::console::c() } }\nmod sub;",
            ),
            ("src/low/sub.rs", "fn f() { inner!(); }"),
            ("src/arch/mod.rs", "pub mod t;"),
            ("src/arch/t.rs", "fn f() { crate::up!(); }"),
            (
                "src/runner.rs",
                "pub fn go() {}\nfn f() { crate::up!(); other::fmt!(); }",
            ),
            (
                "src/console.rs",
                "use crate::up;\npub fn c() {}\nfn f() { up!(); }",
            ),
            // Made path-addressable by `use`; one macro invoking another;
            // one invoking itself.
            (
                "src/mac.rs",
                "macro_rules! field { () => { $crate::z::f() } }\npub(crate) use field;\n\
                 #[macro_export]\nmacro_rules! outer { () => { $crate::mac::field!() } }\n\
                 #[macro_export]\nmacro_rules! rec { () => {}; \
                 ($x:tt $($r:tt)*) => { $crate::z::g(); $crate::rec!($($r)*) } }",
            ),
            ("src/z.rs", "pub fn f() {}\npub fn g() {}"),
            (
                "src/user.rs",
                "use crate::mac::field;\nfn h() { field!(); crate::outer!(); crate::rec!(a b); }",
            ),
        ],
        OTHER,
    );
    // The module defining a macro does not depend on what its body names.
    assert!(g.from("k::low").is_empty());
    assert!(g.from("k::mac").is_empty());
    assert!(g.from("other::fmt").is_empty());
    // Every module invoking it does: by path, across crates, by a name a
    // `use` bound, by a name in textual scope.
    assert_eq!(g.from("k::arch::t"), ["k::low", "k::runner"]);
    assert_eq!(g.from("k::runner"), ["k::low", "other::buf", "other::fmt"]);
    assert_eq!(g.from("k::console"), ["k::low", "k::runner"]);
    assert_eq!(g.from("k::low::sub"), ["k::console", "k::low"]);
    assert_eq!(g.from("k::user"), ["k::mac", "k::z"]);
    assert_eq!(
        g.breaks(),
        ["k::arch::t -> k::low", "k::arch::t -> k::runner"]
    );
    assert_eq!(
        g.sites("k::arch::t", "k::runner"),
        ["src/arch/t.rs:1 crate::up! expands to $crate::runner::go"]
    );
    assert_eq!(
        g.sites("k::user", "k::z"),
        [
            "src/user.rs:2 field! expands to $crate::z::f",
            "src/user.rs:2 crate::outer! expands to $crate::mac::field! expands to $crate::z::f",
            "src/user.rs:2 crate::rec! expands to $crate::z::g",
        ]
    );
    assert_eq!(
        g.sites("k::low::sub", "k::low"),
        ["src/low/sub.rs:1 inner!"]
    );
    assert!(g.cycles().is_empty());
}

#[test]
fn macro_use_is_refused_and_still_followed() {
    let g = graph(
        &[
            (
                "src/lib.rs",
                "#[macro_use]\nmod m;\nmod n;\nmod p;\nmod q;\n#[macro_use]\nextern crate other;",
            ),
            (
                "src/m.rs",
                "macro_rules! hidden { () => { $crate::n::f() } }",
            ),
            ("src/n.rs", "pub fn f() {}"),
            ("src/p.rs", "fn g() { hidden!(); fmt!(); }"),
            ("src/q.rs", "#![macro_use]\nmacro_rules! q { () => {} }"),
        ],
        OTHER,
    );
    // The bare names reach the macros all the same.
    assert_eq!(g.from("k::p"), ["k::m", "k::n", "other::buf", "other::fmt"]);
    assert_eq!(
        g.notes(&g.findings.macro_use),
        [
            "k src/lib.rs:1 #[macro_use] mod m",
            "k src/lib.rs:6 #[macro_use] extern crate other",
            "k::q src/q.rs:1 #![macro_use]",
        ]
    );
    assert!(!g.findings.is_clean());
    let text = g.report();
    assert!(
        text.starts_with(
            "module graph: 0 cycle(s); 0 edge(s) from k::arch to modules outside it; \
             3 other finding(s)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "#[macro_use] (it hides where a macro comes from: import it by path):\n  \
             k: src/lib.rs:1 (#[macro_use] mod m)\n"
        ),
        "{text}"
    );
}

#[test]
fn global_paths_in_macro_tokens_are_kept() {
    let g = graph(
        &[
            ("src/lib.rs", "pub mod a; pub mod b;"),
            (
                "src/a.rs",
                "fn f() { m!(::other::buf::B, <T>::fmt, Vec::<u8>::new(), a == ::other::fmt::X); }",
            ),
            (
                "src/b.rs",
                "macro_rules! g { () => { ::other::fmt::x() } }\nfn f() { g!(); }",
            ),
        ],
        OTHER,
    );
    assert_eq!(g.from("k::a"), ["other::buf", "other::fmt"]);
    assert_eq!(g.from("k::b"), ["other::fmt"]);
    assert_eq!(
        g.sites("k::b", "other::fmt"),
        ["src/b.rs:2 g! expands to ::other::fmt::x"]
    );
}

#[test]
fn extern_declarations_of_our_functions_are_found() {
    let g = graph(
        &[
            ("src/lib.rs", "pub mod arch; pub mod runner; pub mod suite;"),
            (
                "src/arch/mod.rs",
                "extern \"C\" {\n    fn zvtest_main() -> !;\n    fn restart_entry();\n    \
                 #[link_name = \"renamed\"]\n    fn alias();\n}",
            ),
            (
                "src/runner.rs",
                "#[no_mangle]\nextern \"C\" fn zvtest_main() -> ! { loop {} }\n\
                 #[export_name = \"renamed\"]\npub extern \"C\" fn r() {}\n\
                 #[unsafe(no_mangle)]\npub extern \"C\" fn hook() {}",
            ),
            ("src/suite.rs", "extern \"C\" {\n    fn hook();\n}"),
        ],
        &[],
    );
    // An up-call by symbol is an edge like a path...
    assert_eq!(g.from("k::arch"), ["k::runner"]);
    assert_eq!(g.breaks(), ["k::arch -> k::runner"]);
    assert_eq!(
        g.sites("k::arch", "k::runner"),
        [
            "src/arch/mod.rs:2 extern declaration of zvtest_main",
            "src/arch/mod.rs:5 extern declaration of renamed",
        ]
    );
    // ... and a finding wherever it is; an assembly symbol is neither.
    assert_eq!(
        g.notes(&g.findings.upcalls),
        [
            "k::arch src/arch/mod.rs:2 declares zvtest_main, defined in k::runner at src/runner.rs:2",
            "k::arch src/arch/mod.rs:5 declares renamed, defined in k::runner at src/runner.rs:4",
            "k::suite src/suite.rs:2 declares hook, defined in k::runner at src/runner.rs:6",
        ]
    );
    let text = g.report();
    assert!(
        text.contains(
            "extern declarations of functions defined #[no_mangle] in the crates read \
             (calls no path shows):\n  k::arch: src/arch/mod.rs:2 (declares zvtest_main, \
             defined in k::runner at src/runner.rs:2)\n"
        ),
        "{text}"
    );
}

#[test]
fn extern_crate_renames_are_refused_and_followed() {
    let g = graph(
        &[
            (
                "src/lib.rs",
                "extern crate other as o;\nextern crate self as me;\nextern crate alloc;\n\
                 extern crate other as _;\npub mod a;",
            ),
            ("src/a.rs", "fn f() { o::buf::B::new(); me::a::g(); }"),
        ],
        OTHER,
    );
    assert_eq!(g.from("k::a"), ["other::buf"]);
    assert_eq!(g.from("k"), ["other"]);
    assert_eq!(
        g.notes(&g.findings.renames),
        [
            "k src/lib.rs:1 extern crate other as o",
            "k src/lib.rs:2 extern crate self as me",
        ]
    );
    assert!(g.report().contains(
        "extern crate renames (they hide which crate a path names):\n  \
         k: src/lib.rs:1 (extern crate other as o)\n"
    ));
}

#[test]
fn globs_bring_in_names_and_traits() {
    let g = graph(
        &[
            (
                "src/lib.rs",
                "pub mod a; pub mod b; pub mod c; pub mod d; pub mod u;",
            ),
            (
                "src/a.rs",
                "pub mod inner;\npub use crate::b::*;\nuse crate::c::Tr;\npub use crate::d::Pub;",
            ),
            ("src/a/inner.rs", "use super::*;"),
            ("src/b.rs", "pub struct S;"),
            ("src/c.rs", "pub trait Tr { fn m(&self) {} }"),
            ("src/d.rs", "pub trait Pub {}"),
            ("src/u.rs", "use crate::a::*;\nfn f() { let s = S; s.m(); }"),
        ],
        &[],
    );
    // A lone name a glob brought in: where it is defined, and the module
    // that re-exports it; a trait the glob brings in (its methods need no
    // name); not a's private import, which u does not see.
    assert_eq!(g.from("k::u"), ["k::a", "k::b", "k::d"]);
    assert_eq!(
        g.sites("k::u", "k::d"),
        ["src/u.rs:1 crate::a::* (brings in trait Pub)"]
    );
    assert_eq!(g.sites("k::u", "k::b"), ["src/u.rs:2 S"]);
    // From inside a, the private import is seen.
    assert_eq!(g.from("k::a::inner"), ["k::a", "k::c", "k::d"]);
}

#[test]
fn a_private_glob_is_no_way_through_and_an_unseen_name_may_be_any_globbed() {
    // The contract's legacy_page/: the parent globs its children, which
    // glob each other privately.
    let g = graph(
        &[
            ("src/lib.rs", "pub mod lp; pub mod u; pub mod v;"),
            (
                "src/lp/mod.rs",
                "pub mod build;\npub mod layout;\npub use build::*;\npub use layout::*;",
            ),
            (
                "src/lp/build.rs",
                "use super::layout::*;\npub fn build() -> Dev { Dev }",
            ),
            ("src/lp/layout.rs", "pub struct Dev;"),
            ("src/u.rs", "use crate::lp::Dev;"),
            ("src/v.rs", "fn f() { crate::lp::made_by_a_macro(); }"),
        ],
        &[],
    );
    assert_eq!(g.from("k::u"), ["k::lp", "k::lp::layout"]);
    assert_eq!(g.from("k::lp::build"), ["k::lp::layout"]);
    // A name lp has that no module is seen to define: any it globs.
    assert_eq!(g.from("k::v"), ["k::lp", "k::lp::build", "k::lp::layout"]);
    assert!(g.findings.is_clean(), "{}", g.report());
}
