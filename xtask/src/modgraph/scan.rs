//! Reading a crate's modules from its source: the tree from `mod`
//! declarations and the file layout, and from each module what it names
//! (its `use` items, the paths in its code and in macro bodies).

use super::{Crate, ModId, Module, Ref, Tree, Use, UseKind};
use proc_macro2::{Spacing, TokenStream, TokenTree};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use syn::visit::{self, Visit};

/// Where the source files come from: the file system, or a map in tests.
pub trait Source {
    /// The file's text, `None` if there is no such file.
    fn read(&self, path: &Path) -> Option<String>;
}

/// The real files, paths relative to `base` (the workspace), so that the
/// report names them as the repository does.
pub struct Files {
    pub base: PathBuf,
}

impl Source for Files {
    fn read(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(self.base.join(path)).ok()
    }
}

impl Source for BTreeMap<PathBuf, String> {
    fn read(&self, path: &Path) -> Option<String> {
        self.get(path).cloned()
    }
}

/// One crate to read: its name as other crates write it, its root file
/// (`lib.rs`) and the crates its code may name (their paths are followed
/// into their trees when they are read too).
pub struct CrateSpec {
    pub name: String,
    pub root: PathBuf,
    pub externs: Vec<String>,
}

/// Reads every crate's module tree. Modules under `#[cfg(test)]` are left
/// out (see [`is_test_only`]).
pub fn load(specs: &[CrateSpec], src: &dyn Source) -> Result<Tree, String> {
    let mut tree = Tree::default();
    for (k, spec) in specs.iter().enumerate() {
        let dir = spec.root.parent().unwrap_or(Path::new("")).to_path_buf();
        let root = file_module(&mut tree, src, k, Vec::new(), None, &spec.root, dir)?;
        tree.crates.push(Crate {
            name: spec.name.clone(),
            root,
            externs: spec.externs.clone(),
            macros: BTreeMap::new(),
        });
    }
    // `#[macro_export]` puts a macro at its crate's root, whatever module
    // defines it.
    for id in 0..tree.modules.len() {
        let m = &tree.modules[id];
        for name in m.macros.clone() {
            tree.crates[m.krate].macros.insert(name, id);
        }
    }
    Ok(tree)
}

/// A module whose code is a file of its own. Its children's files are in
/// `child_dir` (`foo/` for `foo.rs` and `foo/mod.rs` alike).
fn file_module(
    tree: &mut Tree,
    src: &dyn Source,
    krate: usize,
    path: Vec<String>,
    parent: Option<ModId>,
    file: &Path,
    child_dir: PathBuf,
) -> Result<ModId, String> {
    let text = src
        .read(file)
        .ok_or_else(|| format!("cannot read {}", file.display()))?;
    let ast = syn::parse_file(&text).map_err(|e| {
        let at = e.span().start();
        format!("{}:{}:{}: {e}", file.display(), at.line, at.column + 1)
    })?;
    let id = new_module(tree, krate, path, parent, file);
    module_items(tree, src, id, &ast.items, &child_dir)?;
    Ok(id)
}

fn new_module(
    tree: &mut Tree,
    krate: usize,
    path: Vec<String>,
    parent: Option<ModId>,
    file: &Path,
) -> ModId {
    let id = tree.modules.len();
    if let (Some(p), Some(name)) = (parent, path.last()) {
        tree.modules[p].children.insert(name.clone(), id);
    }
    tree.modules.push(Module {
        krate,
        path,
        parent,
        file: file.to_path_buf(),
        ..Module::default()
    });
    id
}

/// What module `id` names, from its items; then its child modules.
fn module_items(
    tree: &mut Tree,
    src: &dyn Source,
    id: ModId,
    items: &[syn::Item],
    child_dir: &Path,
) -> Result<(), String> {
    let mut c = Collector::default();
    for item in items {
        c.visit_item(item);
    }
    let m = &mut tree.modules[id];
    m.uses = c.uses;
    m.refs = c.refs;
    m.macros = c.macros;
    let file = m.file.clone();
    let (krate, path) = (m.krate, m.path.clone());
    for decl in c.mods {
        let name = decl.ident.to_string();
        let mut child_path = path.clone();
        child_path.push(name.clone());
        match &decl.content {
            Some((_, inner)) => {
                let child = new_module(tree, krate, child_path, Some(id), &file);
                module_items(tree, src, child, inner, &child_dir.join(&name))?;
            }
            None => {
                let (child_file, dir) = match path_attr(&decl.attrs) {
                    // A #[path] file is relative to the declaring file's
                    // directory and, like mod.rs, has its children beside it.
                    Some(p) => {
                        let f = file.parent().unwrap_or(Path::new("")).join(p);
                        let d = f.parent().unwrap_or(Path::new("")).to_path_buf();
                        (f, d)
                    }
                    None => (
                        module_file(src, &file, child_dir, &name)?,
                        child_dir.join(&name),
                    ),
                };
                file_module(tree, src, krate, child_path, Some(id), &child_file, dir)?;
            }
        }
    }
    Ok(())
}

/// `name.rs` or `name/mod.rs` in `dir`: exactly one of them, as rustc wants.
fn module_file(src: &dyn Source, decl: &Path, dir: &Path, name: &str) -> Result<PathBuf, String> {
    let flat = dir.join(format!("{name}.rs"));
    let nested = dir.join(name).join("mod.rs");
    match (src.read(&flat).is_some(), src.read(&nested).is_some()) {
        (true, false) => Ok(flat),
        (false, true) => Ok(nested),
        (true, true) => Err(format!(
            "{}: mod {name}: both {} and {} exist",
            decl.display(),
            flat.display(),
            nested.display()
        )),
        (false, false) => Err(format!(
            "{}: mod {name}: neither {} nor {} exists",
            decl.display(),
            flat.display(),
            nested.display()
        )),
    }
}

fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// `#[cfg(test)]`: a unit-test module or item. Test code is built for host
/// tests only, never into the firmware, and `use super::*` in a test module
/// is how Rust tests are written, so it is no part of the import graph.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| match &a.meta {
        syn::Meta::List(l) => l.path.is_ident("cfg") && l.tokens.to_string() == "test",
        _ => false,
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item::*;
    match item {
        Const(i) => &i.attrs,
        Enum(i) => &i.attrs,
        ExternCrate(i) => &i.attrs,
        Fn(i) => &i.attrs,
        ForeignMod(i) => &i.attrs,
        Impl(i) => &i.attrs,
        Macro(i) => &i.attrs,
        Mod(i) => &i.attrs,
        Static(i) => &i.attrs,
        Struct(i) => &i.attrs,
        Trait(i) => &i.attrs,
        TraitAlias(i) => &i.attrs,
        Type(i) => &i.attrs,
        Union(i) => &i.attrs,
        Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Collects what one module's own code names. Nested `mod` items are
/// handed back, not entered: they are modules of their own.
#[derive(Default)]
struct Collector<'ast> {
    uses: Vec<Use>,
    refs: Vec<Ref>,
    macros: Vec<String>,
    mods: Vec<&'ast syn::ItemMod>,
}

fn line(i: &proc_macro2::Ident) -> usize {
    i.span().start().line
}

impl<'ast> Visit<'ast> for Collector<'ast> {
    fn visit_item(&mut self, i: &'ast syn::Item) {
        if !is_test_only(item_attrs(i)) {
            visit::visit_item(self, i);
        }
    }

    fn visit_item_mod(&mut self, i: &'ast syn::ItemMod) {
        self.mods.push(i);
    }

    fn visit_item_use(&mut self, i: &'ast syn::ItemUse) {
        let mut prefix = Vec::new();
        self.use_tree(&i.tree, i.leading_colon.is_some(), &mut prefix);
    }

    fn visit_item_macro(&mut self, i: &'ast syn::ItemMacro) {
        let exported = i.attrs.iter().any(|a| a.path().is_ident("macro_export"));
        if exported && i.mac.path.is_ident("macro_rules") {
            self.macros.extend(i.ident.as_ref().map(|n| n.to_string()));
        }
        visit::visit_item_macro(self, i);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if let Some(first) = p.segments.first() {
            self.refs.push(Ref {
                path: p.segments.iter().map(|s| s.ident.to_string()).collect(),
                global: p.leading_colon.is_some(),
                line: line(&first.ident),
            });
        }
        visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.tokens(m.tokens.clone());
    }
}

impl Collector<'_> {
    /// Flattens `use a::{b, c::d as e, f::*}` into one [`Use`] per leaf.
    fn use_tree(&mut self, t: &syn::UseTree, global: bool, prefix: &mut Vec<String>) {
        use syn::UseTree::*;
        let mut leaf = |prefix: &[String], segment: Option<&proc_macro2::Ident>, kind, at| {
            let mut path = prefix.to_vec();
            path.extend(segment.map(|s| s.to_string()));
            self.uses.push(Use {
                path,
                global,
                kind,
                line: at,
            });
        };
        match t {
            Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(&p.tree, global, prefix);
                prefix.pop();
            }
            // `a::{self}` imports `a` itself.
            Name(n) if n.ident == "self" => {
                let bind = prefix.last().cloned().unwrap_or_default();
                leaf(prefix, None, UseKind::Name(bind), line(&n.ident));
            }
            Name(n) => leaf(
                prefix,
                Some(&n.ident),
                UseKind::Name(n.ident.to_string()),
                line(&n.ident),
            ),
            Rename(r) if r.ident == "self" => leaf(
                prefix,
                None,
                UseKind::Name(r.rename.to_string()),
                line(&r.ident),
            ),
            Rename(r) => leaf(
                prefix,
                Some(&r.ident),
                UseKind::Name(r.rename.to_string()),
                line(&r.ident),
            ),
            Glob(g) => leaf(prefix, None, UseKind::Glob, g.star_token.span.start().line),
            Group(g) => {
                for t in &g.items {
                    self.use_tree(t, global, prefix);
                }
            }
        }
    }

    /// Paths in a macro's tokens, which syn leaves unparsed: every
    /// `a::b::c` (and `$crate::b`, as `crate::b`) in them, group by group.
    fn tokens(&mut self, stream: TokenStream) {
        let tts: Vec<TokenTree> = stream.into_iter().collect();
        let ident = |i: usize| match tts.get(i) {
            Some(TokenTree::Ident(id)) => Some(id),
            _ => None,
        };
        let punct =
            |i: usize, c: char| matches!(tts.get(i), Some(TokenTree::Punct(p)) if p.as_char() == c);
        let colons = |i: usize| {
            matches!(tts.get(i), Some(TokenTree::Punct(p)) if p.as_char() == ':' && p.spacing() == Spacing::Joint)
                && punct(i + 1, ':')
        };
        let mut i = 0;
        while i < tts.len() {
            if let TokenTree::Group(g) = &tts[i] {
                self.tokens(g.stream());
                i += 1;
                continue;
            }
            // `$crate` is this crate; any other `$name` is a macro variable.
            let dollar = punct(i, '$');
            let start = if dollar { i + 1 } else { i };
            let Some(first) = ident(start) else {
                i += 1;
                continue;
            };
            let mut path = vec![first.to_string()];
            let mut j = start + 1;
            while colons(j) {
                match ident(j + 2) {
                    Some(s) => path.push(s.to_string()),
                    None => break,
                }
                j += 3;
            }
            let after_colons = i > 1 && colons(i - 2);
            if (!dollar || path[0] == "crate") && !after_colons {
                self.refs.push(Ref {
                    path,
                    global: false,
                    line: line(first),
                });
            }
            i = j;
        }
    }
}
