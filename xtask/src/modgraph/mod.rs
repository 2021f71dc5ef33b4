//! The module graph of the firmware and its contract crate, and the rules
//! `cargo xtask lint` holds it to: no cycle, nothing in `arch` naming a
//! firmware module outside `arch`, and nothing that hides a dependency
//! from the graph.
//!
//! Nodes are modules: one per file (`foo.rs`, `foo/mod.rs`) and one per
//! inline `mod x { ... }`, found from the crate roots through `mod`
//! declarations as rustc finds them. Module `a` has an edge to module `b`
//! when `a`'s own code depends on `b`:
//! - a path in `a` (in a `use`, a `pub use` re-export too, in its code,
//!   in the tokens of a macro it invokes, `::`-rooted ones included) names
//!   an item `b` defines, or goes through a `use` of `b` on the way
//!   ([`resolve`]): naming `super::Tally` where the parent re-exports
//!   `Tally` from a sibling depends on the parent and the sibling. So a
//!   parent that re-exports a child (`pub use read::*`) and the child that
//!   imports through that re-export (`use super::Tally`) are a cycle:
//!   import from the defining module instead;
//! - `a` invokes a macro `b` defines (by path, by the `#[macro_export]`
//!   name at the crate root, or by a bare name in textual scope), and the
//!   macro's body, expanded in `a`, names `b`: a body's `$crate::x::y`
//!   names `x::y` wherever it is expanded, so it is charged to every
//!   module that invokes the macro, not to the one that defines it;
//! - a glob import in `a` brings into scope a trait from `b` (through the
//!   globbed module's `use`s), whose methods `a` may call unnamed;
//! - an `extern` block in `a` declares a function `b` defines
//!   `#[no_mangle]`: a call the paths do not show (also a finding).
//!
//! Declaring a child module (`mod b;`) is no edge, and neither is going
//! down through one (`crate::arch::timer` does not depend on `arch`): that
//! is the tree, not a dependency. A module naming itself (`self::x`, or
//! its own items by their full path) is no edge either: there is nothing
//! to depend on. So every cycle has two modules or more; each strongly
//! connected component of more than one module is reported with the edges
//! inside it.
//!
//! Besides the cycles and the layer, the check refuses what hides where a
//! name comes from: `#[macro_use]` (on a `mod` or an `extern crate`),
//! `extern crate … as …` renames, and `extern` declarations of functions
//! the crates read define `#[no_mangle]` (up-calls by symbol).
//!
//! A `use` inside a function counts for its whole module (the graph is of
//! modules). `#[cfg(test)]` modules and items are left out: unit tests are
//! no part of the firmware. Every other `cfg` is read as if on, so the
//! s390x-only modules count on any host. What is read as an approximation
//! errs towards more edges: a macro is in textual scope in its module and
//! every module below it whatever the order in the file.

mod resolve;
mod scan;
mod scc;
#[cfg(test)]
mod tests;

pub use resolve::{Ns, Resolution};
pub use scan::{load, CrateSpec, Files};

use std::collections::{BTreeMap, BTreeSet};
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
    /// Names `extern crate x as name;` at its root gave a crate: name to
    /// crate (`self` as its own name).
    pub aliases: BTreeMap<String, String>,
    /// Crates whose macros `#[macro_use] extern crate` lets in.
    pub macro_use_crates: Vec<String>,
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
    /// Paths in its code and in the tokens of macros it invokes, as
    /// written (not those in the bodies of macros it defines).
    pub refs: Vec<Ref>,
    /// The `#[macro_export]` macros it defines.
    pub macros: Vec<String>,
    /// The names of the items it defines (not modules, not `use`s):
    /// functions, types, traits, constants, statics, macros.
    pub items: BTreeSet<String>,
    /// Of those, the traits.
    pub traits: BTreeSet<String>,
    /// Every `macro_rules!` it defines, in order.
    pub macro_defs: Vec<MacroDef>,
    /// Declared `#[macro_use]` (or `#![macro_use]` in its file): its macros
    /// are in textual scope in its parent.
    pub macro_use: bool,
    /// `#[macro_use]` attributes in its code.
    pub macro_use_attrs: Vec<Note>,
    /// Symbols it defines `#[no_mangle]` (or `#[export_name]`).
    pub exports: Vec<Symbol>,
    /// Symbols its `extern` blocks declare.
    pub foreign: Vec<Symbol>,
    pub extern_crates: Vec<ExternCrate>,
}

/// One leaf of a `use` item: `use a::{b, c as d}` is two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    pub path: Vec<String>,
    /// A leading `::`.
    pub global: bool,
    /// `pub`, `pub(crate)`, ...: seen by glob imports from outside.
    pub public: bool,
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
    /// A macro invocation: `path!(...)`.
    pub call: bool,
}

/// A `macro_rules!` and the paths of its body (its transcribers), as
/// written: `$crate` first where the body has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroDef {
    pub name: String,
    pub exported: bool,
    pub line: usize,
    pub body: Vec<Ref>,
}

/// A macro: the module defining it and its place in `macro_defs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MacroRef {
    pub module: ModId,
    pub index: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub line: usize,
}

/// `extern crate name as rename;`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternCrate {
    pub name: String,
    pub rename: Option<String>,
    pub line: usize,
    pub macro_use: bool,
}

/// Something at a line of a module's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub line: usize,
    pub what: String,
}

/// Where a module names another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub file: PathBuf,
    pub line: usize,
    /// The path as written (`crate::arch::timer::wait_until`), and how it
    /// makes the edge when that is not plain (`, through a use there`,
    /// `crate::out! expands to $crate::console::Console`).
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

    fn site(&self, m: ModId, line: usize, path: String) -> Site {
        Site {
            file: self.modules[m].file.clone(),
            line,
            path,
        }
    }
}

/// Deeper than any macro calling macros we have; a macro that invokes
/// itself is expanded once.
const MAX_EXPANSION: usize = 16;

/// Adds the edges of one module's code.
struct Charge<'t, 'e> {
    tree: &'t Tree,
    edges: &'e mut Edges,
    from: ModId,
}

impl Charge<'_, '_> {
    /// An edge to every module `r` depends on, made at `line` by `written`.
    fn add(&mut self, r: &Resolution, line: usize, written: &str) {
        for m in r.modules() {
            if m == self.from {
                continue;
            }
            let path = if m == r.target.module {
                written.to_string()
            } else {
                format!("{written}, through a use there")
            };
            let site = self.tree.site(self.from, line, path);
            self.edges.entry((self.from, m)).or_default().push(site);
        }
    }

    /// A path of the module's code (`expanding` is `None`), or of the body
    /// of a macro defined in `expanding` that the module invokes at `line`
    /// (`prefix` says how: `crate::out! expands to `).
    fn reference(
        &mut self,
        r: &Ref,
        line: usize,
        prefix: &str,
        expanding: Option<ModId>,
        stack: &mut Vec<MacroRef>,
    ) {
        let tree = self.tree;
        // `$crate` is the defining crate; any other path of a body is read
        // where it is expanded.
        let scope = match (r.path.first().map(String::as_str), expanding) {
            (Some("$crate"), Some(def)) => def,
            _ => self.from,
        };
        let mut written = format!(
            "{prefix}{}{}",
            if r.global { "::" } else { "" },
            r.path.join("::")
        );
        if r.call {
            written.push('!');
            let Some(res) = tree.resolve(scope, &r.path, r.global, Ns::Macro) else {
                return;
            };
            self.add(&res, line, &written);
            if let Some(mac) = res.mac {
                if stack.len() < MAX_EXPANSION && !stack.contains(&mac) {
                    stack.push(mac);
                    let def = &tree.modules[mac.module].macro_defs[mac.index];
                    let prefix = format!("{written} expands to ");
                    for b in &def.body {
                        self.reference(b, line, &prefix, Some(mac.module), stack);
                    }
                    stack.pop();
                }
            }
            return;
        }
        if r.path.len() == 1 && !r.global {
            // A lone name: `crate`, `self`, ... name nothing; one a `use`
            // here binds is that `use`'s edge; a module alone is no value
            // or type (a local of the same name is). What is left is a
            // name a glob brought in.
            let name = r.path[0].as_str();
            if matches!(name, "crate" | "$crate" | "self" | "super" | "Self") {
                return;
            }
            let bound = tree.modules[scope]
                .uses
                .iter()
                .any(|u| matches!(&u.kind, UseKind::Name(n) if n == name));
            if bound {
                return;
            }
            match tree.resolve(scope, &r.path, false, Ns::Any) {
                Some(res) if !res.target.exact => self.add(&res, line, &written),
                _ => {}
            }
            return;
        }
        if let Some(res) = tree.resolve(scope, &r.path, r.global, Ns::Any) {
            self.add(&res, line, &written);
        }
    }
}

/// `extern` declarations of symbols a module of the crates read defines
/// `#[no_mangle]` in another module: (declaring module, its symbol, the
/// defining module, the definition's line).
fn upcalls(tree: &Tree) -> Vec<(ModId, &Symbol, ModId, usize)> {
    let mut defined: BTreeMap<&str, (ModId, usize)> = BTreeMap::new();
    for (m, module) in tree.modules.iter().enumerate() {
        for s in &module.exports {
            defined.entry(s.name.as_str()).or_insert((m, s.line));
        }
    }
    let mut out = Vec::new();
    for (m, module) in tree.modules.iter().enumerate() {
        for s in &module.foreign {
            if let Some(&(def, at)) = defined.get(s.name.as_str()) {
                if def != m {
                    out.push((m, s, def, at));
                }
            }
        }
    }
    out
}

/// Every edge of the graph. A path that names nothing of ours (`core::...`,
/// a local type) makes none, and neither does a single name a `use` of
/// the module binds: that `use` is the edge.
pub fn edges(tree: &Tree) -> Edges {
    let mut edges = Edges::new();
    for (from, m) in tree.modules.iter().enumerate() {
        let mut c = Charge {
            tree,
            edges: &mut edges,
            from,
        };
        for u in &m.uses {
            let mut written = format!("{}{}", if u.global { "::" } else { "" }, u.path.join("::"));
            if u.kind == UseKind::Glob {
                written.push_str("::*");
            }
            let Some(r) = tree.resolve(from, &u.path, u.global, Ns::Any) else {
                continue;
            };
            c.add(&r, u.line, &written);
            if u.kind == UseKind::Glob && r.target.exact {
                for t in tree.glob_traits(from, r.target.module) {
                    let name = t.item.clone().unwrap_or_default();
                    c.add(&t, u.line, &format!("{written} (brings in trait {name})"));
                }
            }
        }
        for r in &m.refs {
            c.reference(r, r.line, "", None, &mut Vec::new());
        }
    }
    for (m, s, def, _) in upcalls(tree) {
        let site = tree.site(m, s.line, format!("extern declaration of {}", s.name));
        edges.entry((m, def)).or_default().push(site);
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
    /// `#[macro_use]`, on a `mod` or an `extern crate`.
    pub macro_use: Vec<(ModId, Note)>,
    /// `extern` declarations of functions a module of the crates read
    /// defines `#[no_mangle]`: calls no path shows.
    pub upcalls: Vec<(ModId, Note)>,
    /// `extern crate x as y`.
    pub renames: Vec<(ModId, Note)>,
}

impl Findings {
    pub fn is_clean(&self) -> bool {
        self.cycles.is_empty() && self.layer_breaks.is_empty() && self.others() == 0
    }

    /// The findings besides cycles and layer breaks.
    pub fn others(&self) -> usize {
        self.macro_use.len() + self.upcalls.len() + self.renames.len()
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
    let mut f = Findings {
        cycles,
        layer_breaks,
        ..Findings::default()
    };
    for (m, module) in tree.modules.iter().enumerate() {
        for n in &module.macro_use_attrs {
            f.macro_use.push((m, n.clone()));
        }
        for e in &module.extern_crates {
            if let Some(rename) = e.rename.as_ref().filter(|r| *r != "_") {
                let what = format!("extern crate {} as {rename}", e.name);
                f.renames.push((m, Note { line: e.line, what }));
            }
        }
    }
    for (m, s, def, at) in upcalls(tree) {
        let what = format!(
            "declares {}, defined in {} at {}:{at}",
            s.name,
            tree.name(def),
            tree.modules[def].file.display()
        );
        f.upcalls.push((m, Note { line: s.line, what }));
    }
    let by_place = |v: &mut Vec<(ModId, Note)>| v.sort_by_key(|a| (tree.name(a.0), a.1.line));
    by_place(&mut f.macro_use);
    by_place(&mut f.upcalls);
    by_place(&mut f.renames);
    f
}

fn site_text(s: &Site) -> String {
    format!("{}:{} ({})", s.file.display(), s.line, s.path)
}

/// The findings, for a person: each cycle with a shortest example and the
/// edges inside it (where each is made), each edge out of the layer with
/// every place that makes it, then what hides dependencies.
pub fn report(tree: &Tree, edges: &Edges, layer: &Layer, f: &Findings) -> String {
    let mut out = String::new();
    let layer_name = format!("{}::{}", layer.krate, layer.path.join("::"));
    let _ = writeln!(
        out,
        "module graph: {} cycle(s); {} edge(s) from {layer_name} to modules outside it; {} other finding(s)",
        f.cycles.len(),
        f.layer_breaks.len(),
        f.others(),
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
    let sections = [
        (
            "#[macro_use] (it hides where a macro comes from: import it by path)",
            &f.macro_use,
        ),
        (
            "extern declarations of functions defined #[no_mangle] in the crates read (calls no path shows)",
            &f.upcalls,
        ),
        (
            "extern crate renames (they hide which crate a path names)",
            &f.renames,
        ),
    ];
    for (title, list) in sections {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{title}:");
        for (m, n) in list {
            let _ = writeln!(
                out,
                "  {}: {}:{} ({})",
                tree.name(*m),
                tree.modules[*m].file.display(),
                n.line,
                n.what
            );
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
