//! The module graph of the firmware and its contract crate, and the two
//! rules `cargo xtask lint` holds it to: no cycle, and nothing in `arch`
//! naming a firmware module outside `arch`.
//!
//! Nodes are modules: one per file (`foo.rs`, `foo/mod.rs`) and one per
//! inline `mod x { ... }`, found from the crate roots through `mod`
//! declarations as rustc finds them. Module `a` has an edge to module `b`
//! when `a`'s own code names `b` (see [`resolve`] for how a path maps to a
//! module): a `use` (a `pub use` re-export too, whatever it re-exports), a
//! path in its code, a path in a macro's tokens. Declaring a child module
//! (`mod b;`) is no edge: that is the tree, not a dependency. A module
//! naming itself (`self::x`, or its own items by their full path) is no
//! edge either: there is nothing to depend on. So every cycle has two
//! modules or more; each strongly connected component of more than one
//! module is reported with the edges inside it.
//!
//! A `use` inside a function counts for its whole module (the graph is of
//! modules). `#[cfg(test)]` modules and items are left out: unit tests are
//! no part of the firmware. Every other `cfg` is read as if on, so the
//! s390x-only modules count on any host.

mod resolve;
mod scan;
mod scc;
#[cfg(test)]
mod tests;

pub use scan::{load, CrateSpec, Files};

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

pub type ModId = usize;

/// Every module of the crates read.
#[derive(Debug, Default)]
pub struct Tree {
    pub crates: Vec<Crate>,
    pub modules: Vec<Module>,
}

#[derive(Debug)]
pub struct Crate {
    pub name: String,
    pub root: ModId,
    /// The other crates its code may name by their crate name.
    pub externs: Vec<String>,
    /// `#[macro_export]` macros: name and the module that defines them.
    pub macros: BTreeMap<String, ModId>,
}

#[derive(Debug, Default)]
pub struct Module {
    pub krate: usize,
    /// From the crate root; empty for the root.
    pub path: Vec<String>,
    pub parent: Option<ModId>,
    pub children: BTreeMap<String, ModId>,
    /// The file its code is in (an inline module's is its parent's).
    pub file: PathBuf,
    pub uses: Vec<Use>,
    /// Paths in its code and in macro tokens, as written.
    pub refs: Vec<Ref>,
    /// The `#[macro_export]` macros it defines.
    pub macros: Vec<String>,
}

/// One leaf of a `use` item: `use a::{b, c as d}` is two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    pub path: Vec<String>,
    /// A leading `::`.
    pub global: bool,
    pub kind: UseKind,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UseKind {
    /// The name it binds (`_` binds none usable).
    Name(String),
    Glob,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub path: Vec<String>,
    pub global: bool,
    pub line: usize,
}

/// Where a module names another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub file: PathBuf,
    pub line: usize,
    /// The path as written (`crate::arch::timer::wait_until`).
    pub path: String,
}

/// Edges `from -> to`, each with every place that makes it.
pub type Edges = BTreeMap<(ModId, ModId), Vec<Site>>;

impl Tree {
    /// `zvtest_firmware::arch::timer`.
    pub fn name(&self, m: ModId) -> String {
        let module = &self.modules[m];
        let mut name = self.crates[module.krate].name.clone();
        for segment in &module.path {
            name.push_str("::");
            name.push_str(segment);
        }
        name
    }

    /// Is `m` in crate `krate` and `prefix` or under it?
    fn is_under(&self, m: ModId, krate: &str, prefix: &[String]) -> bool {
        let module = &self.modules[m];
        self.crates[module.krate].name == krate && module.path.starts_with(prefix)
    }
}

/// Every edge of the graph. A path that names nothing of ours (`core::...`,
/// a local type) or a single name that no `use` put in scope makes none: a
/// lone name in code that is in scope was put there by a `use`, which is
/// the edge.
pub fn edges(tree: &Tree) -> Edges {
    let mut edges = Edges::new();
    for (from, m) in tree.modules.iter().enumerate() {
        let uses = m.uses.iter().map(|u| {
            let mut written = u.path.join("::");
            if u.kind == UseKind::Glob {
                written.push_str("::*");
            }
            (&u.path, u.global, u.line, written)
        });
        let refs = m
            .refs
            .iter()
            .filter(|r| r.path.len() > 1)
            .map(|r| (&r.path, r.global, r.line, r.path.join("::")));
        for (path, global, line, written) in uses.chain(refs) {
            let Some(to) = tree.resolve(from, path, global) else {
                continue;
            };
            if to.module != from {
                edges.entry((from, to.module)).or_default().push(Site {
                    file: m.file.clone(),
                    line,
                    path: written,
                });
            }
        }
    }
    edges
}

/// A lower layer: modules under `path` in crate `krate` that must not name
/// a module of that crate outside it. Other crates (the contract, below the
/// firmware, which cannot name it back) are not outside in this sense.
#[derive(Debug, Clone)]
pub struct Layer {
    pub krate: String,
    pub path: Vec<String>,
}

/// What the rules found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Strongly connected components of two modules or more.
    pub cycles: Vec<Vec<ModId>>,
    /// Edges out of the layer.
    pub layer_breaks: Vec<(ModId, ModId)>,
}

impl Findings {
    pub fn is_clean(&self) -> bool {
        self.cycles.is_empty() && self.layer_breaks.is_empty()
    }
}

fn adjacency(tree: &Tree, edges: &Edges) -> Vec<Vec<ModId>> {
    let mut adj = vec![Vec::new(); tree.modules.len()];
    for &(from, to) in edges.keys() {
        adj[from].push(to);
    }
    adj
}

pub fn check(tree: &Tree, edges: &Edges, layer: &Layer) -> Findings {
    let by_name = |ms: &mut Vec<ModId>| ms.sort_by_key(|&m| tree.name(m));
    let mut cycles: Vec<Vec<ModId>> = scc::components(&adjacency(tree, edges))
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|mut c| {
            by_name(&mut c);
            c
        })
        .collect();
    cycles.sort_by_key(|c| tree.name(c[0]));
    let layer_breaks = edges
        .keys()
        .copied()
        .filter(|&(from, to)| {
            tree.is_under(from, &layer.krate, &layer.path)
                && tree.is_under(to, &layer.krate, &[])
                && !tree.is_under(to, &layer.krate, &layer.path)
        })
        .collect();
    Findings {
        cycles,
        layer_breaks,
    }
}

fn site_text(s: &Site) -> String {
    format!("{}:{} ({})", s.file.display(), s.line, s.path)
}

/// The findings, for a person: each cycle with a shortest example and the
/// edges inside it (where each is made), then each edge out of the layer
/// with every place that makes it.
pub fn report(tree: &Tree, edges: &Edges, layer: &Layer, f: &Findings) -> String {
    let mut out = String::new();
    let layer_name = format!("{}::{}", layer.krate, layer.path.join("::"));
    let _ = writeln!(
        out,
        "module graph: {} cycle(s); {} edge(s) from {layer_name} to modules outside it",
        f.cycles.len(),
        f.layer_breaks.len()
    );
    let adj = adjacency(tree, edges);
    for (i, c) in f.cycles.iter().enumerate() {
        let names: Vec<String> = c.iter().map(|&m| tree.name(m)).collect();
        let _ = writeln!(
            out,
            "cycle {} of {}: {} modules: {}",
            i + 1,
            f.cycles.len(),
            c.len(),
            names.join(", ")
        );
        let mut sorted = c.clone();
        sorted.sort_unstable();
        if let Some(example) = scc::shortest_cycle(&adj, c[0], &sorted) {
            let path: Vec<String> = example.iter().map(|&m| tree.name(m)).collect();
            let _ = writeln!(out, "  e.g. {}", path.join(" -> "));
        }
        let mut inside: Vec<(String, String, &Vec<Site>)> = edges
            .iter()
            .filter(|((from, to), _)| {
                sorted.binary_search(from).is_ok() && sorted.binary_search(to).is_ok()
            })
            .map(|(&(from, to), sites)| (tree.name(from), tree.name(to), sites))
            .collect();
        inside.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        for (from, to, sites) in inside {
            let more = match sites.len() {
                1 => String::new(),
                n => format!(" and {} more", n - 1),
            };
            let _ = writeln!(out, "  {from} -> {to}: {}{more}", site_text(&sites[0]));
        }
    }
    if !f.layer_breaks.is_empty() {
        let _ = writeln!(out, "{layer_name} names modules outside it:");
    }
    for &(from, to) in &f.layer_breaks {
        let _ = writeln!(out, "  {} -> {}", tree.name(from), tree.name(to));
        for s in &edges[&(from, to)] {
            let _ = writeln!(out, "    {}", site_text(s));
        }
    }
    out
}

/// Every module and the modules it names (`--verbose`).
pub fn summary(tree: &Tree, edges: &Edges) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "module graph: {} modules in {} crates, {} edges",
        tree.modules.len(),
        tree.crates.len(),
        edges.len()
    );
    let mut ids: Vec<ModId> = (0..tree.modules.len()).collect();
    ids.sort_by_key(|&m| tree.name(m));
    for m in ids {
        let mut to: Vec<String> = edges
            .keys()
            .filter(|(from, _)| *from == m)
            .map(|&(_, t)| tree.name(t))
            .collect();
        to.sort();
        let to = if to.is_empty() {
            "(nothing)".to_string()
        } else {
            to.join(", ")
        };
        let _ = writeln!(out, "  {} -> {to}", tree.name(m));
    }
    out
}

/// The firmware's crates (as the workspace lays them out) and its rule.
pub fn firmware() -> (Vec<CrateSpec>, Layer) {
    let specs = vec![
        CrateSpec {
            name: "zvtest_firmware".into(),
            root: "firmware/src/lib.rs".into(),
            externs: vec!["zvtest_contract".into()],
        },
        CrateSpec {
            name: "zvtest_contract".into(),
            root: "firmware/contract/src/lib.rs".into(),
            externs: Vec::new(),
        },
    ];
    let layer = Layer {
        krate: "zvtest_firmware".into(),
        path: vec!["arch".into()],
    };
    (specs, layer)
}
