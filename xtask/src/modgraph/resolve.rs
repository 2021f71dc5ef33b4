//! From a path as written in a module to the module it names.
//!
//! A path names the module reached by the longest run of its segments that
//! are modules: `crate::arch::timer::wait_until` names `arch::timer`,
//! `crate::nothing::x` the crate root. Its first segment is read as the
//! compiler reads it: `crate`, `$crate`, `self`, `super`, an extern crate
//! that was read too (`zvtest_contract`), or a name in the module's scope
//! (a child module, a name a `use` of the module binds, a name one of its
//! glob `use`s brings in). A name bound by a `use` is followed to what it
//! binds, so a path through a re-export names the module that defines the
//! thing: `crate::virtio::ring::Buffer` (`pub use
//! zvtest_contract::virtio::{ring, ...}`) names the contract's
//! `virtio::ring`, `crate::console::on_service_signal` (`pub use
//! sclp::on_service_signal`) names `console::sclp`; the re-exporting module
//! has its own edge, from its `use`. A `#[macro_export]` macro
//! (`crate::out!`) names the module that defines it. A first segment that
//! is none of these (`core`, `alloc`, a local type, a generic) names nothing
//! of ours.

use super::{ModId, Tree, UseKind};

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

impl Tree {
    /// The module `path`, written in module `from`, names; `None` if it
    /// names nothing in the crates read. `global` is a leading `::`.
    pub fn resolve(&self, from: ModId, path: &[String], global: bool) -> Option<Target> {
        self.resolve_at(from, path, global, 0)
    }

    fn resolve_at(
        &self,
        from: ModId,
        path: &[String],
        global: bool,
        depth: usize,
    ) -> Option<Target> {
        if depth > MAX_DEPTH {
            return None;
        }
        let (first, rest) = path.split_first()?;
        let mut at = match first.as_str() {
            _ if global => self.extern_crate(from, first)?,
            "crate" | "$crate" => Target::module(self.root_of(from)),
            "self" => Target::module(from),
            "super" => Target::module(self.modules[from].parent?),
            name => self
                .lookup(from, name, depth)
                .or_else(|| self.extern_crate(from, name))?,
        };
        for segment in rest {
            if !at.exact {
                break;
            }
            at = match segment.as_str() {
                "self" => at,
                "super" => Target::module(self.modules[at.module].parent?),
                name => match self.lookup(at.module, name, depth) {
                    Some(t) => t,
                    // An item of this module (or one we cannot see into).
                    None => Target::item_of(at.module),
                },
            };
        }
        Some(at)
    }

    /// `name` in module `m`'s namespace: a child module, a name a `use` of
    /// `m` binds, at a crate root a `#[macro_export]` macro, else a name
    /// one of `m`'s glob imports brings in.
    fn lookup(&self, m: ModId, name: &str, depth: usize) -> Option<Target> {
        if depth > MAX_DEPTH {
            return None;
        }
        let module = &self.modules[m];
        if let Some(&child) = module.children.get(name) {
            return Some(Target::module(child));
        }
        if let Some(u) = module
            .uses
            .iter()
            .find(|u| matches!(&u.kind, UseKind::Name(n) if n == name))
        {
            return self.resolve_at(m, &u.path, u.global, depth + 1);
        }
        let krate = &self.crates[module.krate];
        if krate.root == m {
            if let Some(&defined_in) = krate.macros.get(name) {
                return Some(Target::item_of(defined_in));
            }
        }
        module
            .uses
            .iter()
            .filter(|u| u.kind == UseKind::Glob)
            .filter_map(|u| self.resolve_at(m, &u.path, u.global, depth + 1))
            .filter(|t| t.exact && t.module != m)
            .find_map(|t| self.lookup(t.module, name, depth + 1))
    }

    fn extern_crate(&self, from: ModId, name: &str) -> Option<Target> {
        let krate = &self.crates[self.modules[from].krate];
        if !krate.externs.iter().any(|e| e == name) {
            return None;
        }
        let other = self.crates.iter().find(|c| c.name == name)?;
        Some(Target::module(other.root))
    }

    pub fn root_of(&self, m: ModId) -> ModId {
        self.crates[self.modules[m].krate].root
    }
}
