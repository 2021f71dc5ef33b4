//! From a path as written in a module to the modules it depends on.
//!
//! A path names the module reached by the longest run of its segments that
//! are modules: `crate::arch::timer::wait_until` names `arch::timer`,
//! `crate::nothing::x` the crate root. Its first segment is read as the
//! compiler reads it: `crate`, `$crate`, `self`, `super`, an extern crate
//! that was read too (`zvtest_contract`, or a name `extern crate … as`
//! gave it), or a name in the module's scope (a child module, an item it
//! defines, a name a `use` of the module binds, a name one of its glob
//! `use`s brings in; for a macro, first a `macro_rules!` in textual scope).
//!
//! A name a module binds by `use` (or brings in by a glob) is followed to
//! what it binds, and every module whose `use` the path goes through is
//! recorded ([`Resolution::via`]): the path depends on it as much as on
//! the module that defines the item. So `super::Tally` in `tap::read`,
//! where `tap` has `pub use write::{Tally, ...}`, depends on `tap` (via)
//! and `tap::write` (the target); `crate::virtio::ring::Buffer`, with
//! `pub use zvtest_contract::virtio::{ring, ...}` in `virtio`, on
//! `virtio` and the contract's `virtio::ring`. Going down through a child
//! module (`crate::arch::timer`) is no dependency on the parent: that is
//! the tree. A `#[macro_export]` macro (`crate::out!`) names the module
//! that defines it. A first segment that is none of these (`core`,
//! `alloc`, a local, a generic) names nothing of ours.

use super::{MacroRef, ModId, Tree, UseKind};
use std::collections::BTreeSet;

/// Deeper than any chain of re-exports we have; a `use` that names itself
/// stops here instead of looping.
const MAX_DEPTH: usize = 16;

/// Where a path led: a module, and whether the whole path named it
/// (`exact`), so that segments after it may be looked up inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub module: ModId,
    pub exact: bool,
}

impl Target {
    fn module(module: ModId) -> Target {
        Target {
            module,
            exact: true,
        }
    }

    fn item_of(module: ModId) -> Target {
        Target {
            module,
            exact: false,
        }
    }
}

/// Which namespace the last segment is looked up in: a macro invocation's
/// (`m!`) or any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ns {
    Any,
    Macro,
}

/// A path resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub target: Target,
    /// The modules whose `use` (named or glob) the path went through, in
    /// order; the module it was written in may be one of them.
    pub via: Vec<ModId>,
    /// The `macro_rules!` it names (in [`Ns::Macro`], or a
    /// `#[macro_export]` name).
    pub mac: Option<MacroRef>,
    /// The name of the item of `target.module` it names, when that module
    /// defines it.
    pub item: Option<String>,
}

impl Resolution {
    /// Every module the path depends on: each it went through, then the
    /// target, each once.
    pub fn modules(&self) -> Vec<ModId> {
        let mut out: Vec<ModId> = Vec::new();
        for &m in self.via.iter().chain([&self.target.module]) {
            if !out.contains(&m) {
                out.push(m);
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
struct Found {
    target: Target,
    mac: Option<MacroRef>,
    item: Option<String>,
}

impl Found {
    fn module(m: ModId) -> Found {
        Found {
            target: Target::module(m),
            mac: None,
            item: None,
        }
    }

    fn item_of(m: ModId) -> Found {
        Found {
            target: Target::item_of(m),
            mac: None,
            item: None,
        }
    }

    fn item(m: ModId, name: &str) -> Found {
        Found {
            target: Target::item_of(m),
            mac: None,
            item: Some(name.to_string()),
        }
    }

    fn mac(mac: MacroRef, name: &str) -> Found {
        Found {
            target: Target::item_of(mac.module),
            mac: Some(mac),
            item: Some(name.to_string()),
        }
    }
}

/// A lookup: the module, the name, its namespace, and whether the one
/// looking is inside the module (and so sees its private `use`s).
type LookupKey = (ModId, String, Ns, bool);

/// One resolution: the modules gone through so far, and the lookups in
/// progress or known to fail (so that glob cycles end, and fast).
struct Walk<'t> {
    tree: &'t Tree,
    via: Vec<ModId>,
    depth: usize,
    active: BTreeSet<LookupKey>,
    failed: BTreeSet<LookupKey>,
}

impl Tree {
    /// What `path`, written in module `from`, depends on; `None` if it
    /// names nothing in the crates read. `global` is a leading `::`; `ns`
    /// the namespace of its last segment.
    pub fn resolve(
        &self,
        from: ModId,
        path: &[String],
        global: bool,
        ns: Ns,
    ) -> Option<Resolution> {
        self.resolve_via(from, path, global, ns, Vec::new())
    }

    fn resolve_via(
        &self,
        from: ModId,
        path: &[String],
        global: bool,
        ns: Ns,
        via: Vec<ModId>,
    ) -> Option<Resolution> {
        let mut w = Walk {
            tree: self,
            via,
            depth: 0,
            active: BTreeSet::new(),
            failed: BTreeSet::new(),
        };
        let f = w.path(from, path, global, ns)?;
        Some(Resolution {
            target: f.target,
            via: w.via,
            mac: f.mac,
            item: f.item,
        })
    }

    /// A `macro_rules! name` in textual scope at module `m`: defined in
    /// `m` or an ancestor (which covers the modules declared after it), or
    /// in a module they declare `#[macro_use]`. Order in the file is not
    /// looked at: a macro defined after the `mod` is counted too.
    pub fn textual_macro(&self, m: ModId, name: &str) -> Option<MacroRef> {
        let mut at = Some(m);
        while let Some(a) = at {
            if let Some(r) = self.macro_in(a, name, 0) {
                return Some(r);
            }
            at = self.modules[a].parent;
        }
        None
    }

    fn macro_in(&self, m: ModId, name: &str, depth: usize) -> Option<MacroRef> {
        let module = &self.modules[m];
        if let Some(index) = module.macro_defs.iter().rposition(|d| d.name == name) {
            return Some(MacroRef { module: m, index });
        }
        if depth > MAX_DEPTH {
            return None;
        }
        module
            .children
            .values()
            .filter(|&&c| self.modules[c].macro_use)
            .find_map(|&c| self.macro_in(c, name, depth + 1))
    }

    /// The exported macro `name` of crate `krate`.
    fn exported_macro(&self, krate: usize, name: &str) -> Option<MacroRef> {
        let m = *self.crates[krate].macros.get(name)?;
        let index = self.modules[m]
            .macro_defs
            .iter()
            .rposition(|d| d.exported && d.name == name)?;
        Some(MacroRef { module: m, index })
    }

    /// The root of the crate `name` names in `from`'s crate: one it
    /// depends on, or one `extern crate … as name` named so (itself too,
    /// by `extern crate self as name`).
    fn extern_crate(&self, from: ModId, name: &str) -> Option<ModId> {
        let krate = &self.crates[self.modules[from].krate];
        let target = if krate.externs.iter().any(|e| e == name) {
            name
        } else {
            krate.aliases.get(name)?.as_str()
        };
        let other = self.crates.iter().find(|c| c.name == target)?;
        Some(other.root)
    }

    pub fn root_of(&self, m: ModId) -> ModId {
        self.crates[self.modules[m].krate].root
    }

    /// Does a path written in `viewer` see `u`, a `use` of module `m`? A
    /// private `use` is seen from inside `m` only (every `pub(...)` is
    /// taken as seen from everywhere).
    fn sees(&self, viewer: ModId, m: ModId, u: &super::Use) -> bool {
        u.public || self.is_within(viewer, m)
    }

    /// Is `m` the module `ancestor` or inside it?
    pub fn is_within(&self, m: ModId, ancestor: ModId) -> bool {
        let mut at = Some(m);
        while let Some(a) = at {
            if a == ancestor {
                return true;
            }
            at = self.modules[a].parent;
        }
        false
    }

    /// The traits a glob import of module `x`, written in module `from`,
    /// brings into scope besides `x`'s own: those `x` binds by `use` (named,
    /// or `as _`) or brings in by its own globs, as far as `from` may see
    /// them (a private `use` only from inside `x`). Their methods can then
    /// be called without the trait's name being written: each is a
    /// dependency of `from`, with the modules on the way to it.
    pub fn glob_traits(&self, from: ModId, x: ModId) -> Vec<Resolution> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        self.traits_through(from, x, &[], &mut seen, &mut out);
        out
    }

    fn traits_through(
        &self,
        viewer: ModId,
        x: ModId,
        via: &[ModId],
        seen: &mut BTreeSet<ModId>,
        out: &mut Vec<Resolution>,
    ) {
        if via.len() > MAX_DEPTH || !seen.insert(x) {
            return;
        }
        let mut via = via.to_vec();
        via.push(x);
        for u in &self.modules[x].uses {
            if !self.sees(viewer, x, u) {
                continue;
            }
            let Some(r) = self.resolve_via(x, &u.path, u.global, Ns::Any, via.clone()) else {
                continue;
            };
            match &u.kind {
                UseKind::Name(_) => {
                    let m = r.target.module;
                    let is_trait = r
                        .item
                        .as_ref()
                        .is_some_and(|i| self.modules[m].traits.contains(i));
                    if !r.target.exact && is_trait {
                        out.push(r);
                    }
                }
                UseKind::Glob if r.target.exact && r.target.module != x => {
                    let g = r.target.module;
                    for t in &self.modules[g].traits {
                        out.push(Resolution {
                            target: Target::item_of(g),
                            via: r.via.clone(),
                            mac: None,
                            item: Some(t.clone()),
                        });
                    }
                    self.traits_through(x, g, &r.via, seen, out);
                }
                UseKind::Glob => {}
            }
        }
    }
}

impl Walk<'_> {
    fn path(&mut self, from: ModId, path: &[String], global: bool, ns: Ns) -> Option<Found> {
        if self.depth > MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let found = self.path_inner(from, path, global, ns);
        self.depth -= 1;
        found
    }

    fn path_inner(&mut self, from: ModId, path: &[String], global: bool, ns: Ns) -> Option<Found> {
        let t = self.tree;
        let (first, rest) = path.split_first()?;
        let ns_at = |k: usize| if k + 1 == path.len() { ns } else { Ns::Any };
        let mut at = match first.as_str() {
            _ if global => Found::module(t.extern_crate(from, first)?),
            "crate" | "$crate" => Found::module(t.root_of(from)),
            "self" => Found::module(from),
            "super" => Found::module(t.modules[from].parent?),
            name => self.scope(from, name, ns_at(0))?,
        };
        for (k, segment) in rest.iter().enumerate() {
            if !at.target.exact {
                break;
            }
            let m = at.target.module;
            at = match segment.as_str() {
                "self" => at,
                "super" => Found::module(t.modules[m].parent?),
                // Not found: an item of this module we cannot see (made by
                // a macro, or brought in from outside the crates read).
                // Any module it globs may be where it comes from.
                name => match self.lookup(m, name, ns_at(k + 1), from) {
                    Some(f) => f,
                    None => {
                        self.globbed(m, from);
                        Found::item_of(m)
                    }
                },
            };
        }
        Some(at)
    }

    /// Adds to `via` every module of ours that `m`'s glob imports reach,
    /// and theirs: where a name `m` has but we do not see may come from.
    fn globbed(&mut self, m: ModId, viewer: ModId) {
        let mut todo = vec![(m, viewer)];
        let mut seen = BTreeSet::from([m]);
        while let Some((at, viewer)) = todo.pop() {
            let tree = self.tree;
            for u in tree.modules[at]
                .uses
                .iter()
                .filter(|u| u.kind == UseKind::Glob)
            {
                if !tree.sees(viewer, at, u) {
                    continue;
                }
                self.via.push(at);
                let target = self.path(at, &u.path, u.global, Ns::Any);
                match target {
                    Some(g) if g.target.exact && seen.insert(g.target.module) => {
                        self.via.push(g.target.module);
                        todo.push((g.target.module, at));
                    }
                    _ => {}
                }
            }
        }
    }

    /// A path's first segment, in the scope of module `from`.
    fn scope(&mut self, from: ModId, name: &str, ns: Ns) -> Option<Found> {
        let t = self.tree;
        if ns == Ns::Macro {
            if let Some(mac) = t.textual_macro(from, name) {
                return Some(Found::mac(mac, name));
            }
        }
        if let Some(f) = self.lookup(from, name, ns, from) {
            return Some(f);
        }
        if let Some(root) = t.extern_crate(from, name) {
            return Some(Found::module(root));
        }
        if ns == Ns::Macro {
            // `#[macro_use] extern crate x;`: x's exported macros.
            let krate = &t.crates[t.modules[from].krate];
            for c in &krate.macro_use_crates {
                let Some(k) = t.crates.iter().position(|k| &k.name == c) else {
                    continue;
                };
                if let Some(mac) = t.exported_macro(k, name) {
                    return Some(Found::mac(mac, name));
                }
            }
        }
        None
    }

    /// `name` in module `m`'s namespace: a child module, an item it
    /// defines, a name a `use` of `m` binds, at a crate root a
    /// `#[macro_export]` macro, else a name one of `m`'s glob imports
    /// brings in.
    fn lookup(&mut self, m: ModId, name: &str, ns: Ns, viewer: ModId) -> Option<Found> {
        let key = (m, name.to_string(), ns, self.tree.is_within(viewer, m));
        if self.depth > MAX_DEPTH || self.failed.contains(&key) || self.active.contains(&key) {
            return None;
        }
        self.active.insert(key.clone());
        self.depth += 1;
        let found = self.lookup_inner(m, name, ns, viewer);
        self.depth -= 1;
        self.active.remove(&key);
        if found.is_none() {
            self.failed.insert(key);
        }
        found
    }

    fn lookup_inner(&mut self, m: ModId, name: &str, ns: Ns, viewer: ModId) -> Option<Found> {
        let t = self.tree;
        let module = &t.modules[m];
        match ns {
            Ns::Any => {
                if let Some(&child) = module.children.get(name) {
                    return Some(Found::module(child));
                }
                if module.items.contains(name) {
                    return Some(Found::item(m, name));
                }
            }
            Ns::Macro => {
                if let Some(index) = module.macro_defs.iter().rposition(|d| d.name == name) {
                    return Some(Found::mac(MacroRef { module: m, index }, name));
                }
            }
        }
        let named: Vec<_> = module
            .uses
            .iter()
            .filter(|u| matches!(&u.kind, UseKind::Name(n) if n == name))
            .filter(|u| t.sees(viewer, m, u))
            .collect();
        if !named.is_empty() {
            // A name bound by `use` shadows any glob: it is found through
            // one of these or (outside the crates read) not at all.
            for u in named {
                let mark = self.via.len();
                self.via.push(m);
                if let Some(f) = self.path(m, &u.path, u.global, ns) {
                    return Some(f);
                }
                self.via.truncate(mark);
            }
            return None;
        }
        let krate = &t.crates[module.krate];
        if krate.root == m {
            if let Some(mac) = t.exported_macro(module.krate, name) {
                return Some(Found::mac(mac, name));
            }
        }
        for u in module.uses.iter().filter(|u| u.kind == UseKind::Glob) {
            if !t.sees(viewer, m, u) {
                continue;
            }
            let mark = self.via.len();
            self.via.push(m);
            if let Some(g) = self.path(m, &u.path, u.global, Ns::Any) {
                if g.target.exact && g.target.module != m {
                    if let Some(f) = self.lookup(g.target.module, name, ns, m) {
                        return Some(f);
                    }
                }
            }
            self.via.truncate(mark);
        }
        None
    }
}
