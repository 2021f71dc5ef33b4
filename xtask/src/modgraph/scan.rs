//! Reading a crate's modules from its source: the tree from `mod`
//! declarations and the file layout, and from each module what it names
//! (its `use` items, the paths in its code and in the tokens of the macros
//! it invokes), what it defines (items, traits, `macro_rules!` with the
//! paths of their bodies, `#[no_mangle]` symbols), and what hides names:
//! `#[macro_use]`, `extern crate … as …`, `extern` block declarations.

use super::{Crate, ExternCrate, MacroDef, ModId, Module, Note, Ref, Symbol, Tree, Use, UseKind};
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
        // `extern crate x as y;` at the root puts `y` in the whole crate's
        // extern prelude; `#[macro_use] extern crate x;` x's exported
        // macros in its textual scope, the whole crate.
        let mut aliases = BTreeMap::new();
        let mut macro_use_crates = Vec::new();
        for e in &tree.modules[root].extern_crates {
            let target = if e.name == "self" {
                spec.name.clone()
            } else {
                e.name.clone()
            };
            if let Some(alias) = e.rename.as_ref().filter(|a| *a != "_") {
                aliases.insert(alias.clone(), target.clone());
            }
            if e.macro_use {
                macro_use_crates.push(target);
            }
        }
        tree.crates.push(Crate {
            name: spec.name.clone(),
            root,
            externs: spec.externs.clone(),
            aliases,
            macro_use_crates,
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
    // `#![macro_use]` at the top of a module's file is `#[macro_use]` on
    // its `mod` item.
    if let Some(line) = macro_use_attr(&ast.attrs) {
        tree.modules[id].macro_use = true;
        tree.modules[id].macro_use_attrs.push(Note {
            line,
            what: "#![macro_use]".into(),
        });
    }
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

/// What module `id` names and defines, from its items; then its child
/// modules.
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
    m.items = c.items;
    m.traits = c.traits;
    m.macro_defs = c.macro_defs;
    m.exports = c.exports;
    m.foreign = c.foreign;
    m.extern_crates = c.extern_crates;
    m.macro_use_attrs.extend(c.macro_use);
    let file = m.file.clone();
    let (krate, path) = (m.krate, m.path.clone());
    for decl in c.mods {
        let name = ident(&decl.ident);
        let mut child_path = path.clone();
        child_path.push(name.clone());
        let child = match &decl.content {
            Some((_, inner)) => {
                let child = new_module(tree, krate, child_path, Some(id), &file);
                module_items(tree, src, child, inner, &child_dir.join(&name))?;
                child
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
                file_module(tree, src, krate, child_path, Some(id), &child_file, dir)?
            }
        };
        // `#[macro_use] mod x;` lets x's macros out into this module.
        if let Some(line) = macro_use_attr(&decl.attrs) {
            tree.modules[child].macro_use = true;
            tree.modules[id].macro_use_attrs.push(Note {
                line,
                what: format!("#[macro_use] mod {name}"),
            });
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
    name_value(attrs, "path")
}

/// `#[name = "value"]`, also as `#[unsafe(name = "value")]`.
fn name_value(attrs: &[syn::Attribute], name: &str) -> Option<String> {
    attrs.iter().find_map(|a| meta_value(&a.meta, name))
}

fn meta_value(meta: &syn::Meta, name: &str) -> Option<String> {
    match meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident(name) => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        syn::Meta::List(l) if l.path.is_ident("unsafe") => {
            meta_value(&syn::parse2(l.tokens.clone()).ok()?, name)
        }
        _ => None,
    }
}

/// `#[name]`, also as `#[unsafe(name)]`.
fn has_word(attrs: &[syn::Attribute], name: &str) -> bool {
    attrs.iter().any(|a| match &a.meta {
        syn::Meta::Path(p) => p.is_ident(name),
        syn::Meta::List(l) if l.path.is_ident("unsafe") => l.tokens.to_string() == name,
        _ => false,
    })
}

/// The line of a `#[macro_use]` (or `#![macro_use]`) among `attrs`.
fn macro_use_attr(attrs: &[syn::Attribute]) -> Option<usize> {
    attrs
        .iter()
        .find(|a| a.path().is_ident("macro_use"))
        .map(|a| a.pound_token.span.start().line)
}

/// The symbol a `#[no_mangle]` or `#[export_name]` item defines.
fn exported_symbol(attrs: &[syn::Attribute], id: &proc_macro2::Ident) -> Option<String> {
    name_value(attrs, "export_name").or_else(|| has_word(attrs, "no_mangle").then(|| ident(id)))
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

/// The name an item defines in its module's namespace, if any (modules,
/// `use`s and macros are kept apart).
fn item_name(item: &syn::Item) -> Option<&proc_macro2::Ident> {
    use syn::Item::*;
    match item {
        Const(i) => Some(&i.ident),
        Enum(i) => Some(&i.ident),
        Fn(i) => Some(&i.sig.ident),
        Static(i) => Some(&i.ident),
        Struct(i) => Some(&i.ident),
        Trait(i) => Some(&i.ident),
        TraitAlias(i) => Some(&i.ident),
        Type(i) => Some(&i.ident),
        Union(i) => Some(&i.ident),
        _ => None,
    }
}

/// An identifier without its `r#`.
fn ident(i: &proc_macro2::Ident) -> String {
    let s = i.to_string();
    match s.strip_prefix("r#") {
        Some(raw) => raw.to_string(),
        None => s,
    }
}

/// Collects what one module's own code names and defines. Nested `mod`
/// items are handed back, not entered: they are modules of their own.
/// Items inside function bodies count for the module (the graph is of
/// modules).
#[derive(Default)]
struct Collector<'ast> {
    uses: Vec<Use>,
    refs: Vec<Ref>,
    macros: Vec<String>,
    mods: Vec<&'ast syn::ItemMod>,
    items: std::collections::BTreeSet<String>,
    traits: std::collections::BTreeSet<String>,
    macro_defs: Vec<MacroDef>,
    exports: Vec<Symbol>,
    foreign: Vec<Symbol>,
    extern_crates: Vec<ExternCrate>,
    macro_use: Vec<Note>,
}

fn line(i: &proc_macro2::Ident) -> usize {
    i.span().start().line
}

fn path_segments(p: &syn::Path) -> Vec<String> {
    p.segments.iter().map(|s| ident(&s.ident)).collect()
}

impl<'ast> Visit<'ast> for Collector<'ast> {
    fn visit_item(&mut self, i: &'ast syn::Item) {
        if is_test_only(item_attrs(i)) {
            return;
        }
        if let Some(name) = item_name(i).map(ident).filter(|n| n != "_") {
            if matches!(i, syn::Item::Trait(_) | syn::Item::TraitAlias(_)) {
                self.traits.insert(name.clone());
            }
            self.items.insert(name);
        }
        visit::visit_item(self, i);
    }

    fn visit_item_mod(&mut self, i: &'ast syn::ItemMod) {
        self.mods.push(i);
    }

    fn visit_item_use(&mut self, i: &'ast syn::ItemUse) {
        let public = !matches!(i.vis, syn::Visibility::Inherited);
        let mut prefix = Vec::new();
        self.use_tree(&i.tree, i.leading_colon.is_some(), public, &mut prefix);
    }

    fn visit_item_extern_crate(&mut self, i: &'ast syn::ItemExternCrate) {
        let name = ident(&i.ident);
        let rename = i.rename.as_ref().map(|(_, r)| ident(r));
        let at = i.extern_token.span.start().line;
        let macro_use = macro_use_attr(&i.attrs);
        if let Some(l) = macro_use {
            self.macro_use.push(Note {
                line: l,
                what: format!("#[macro_use] extern crate {name}"),
            });
        }
        // `extern crate x as y;` binds `y` here like `use ::x as y;`.
        if let Some(alias) = rename.as_ref().filter(|a| *a != "_") {
            let (path, global) = if name == "self" {
                (vec!["crate".to_string()], false)
            } else {
                (vec![name.clone()], true)
            };
            self.uses.push(Use {
                path,
                global,
                public: !matches!(i.vis, syn::Visibility::Inherited),
                kind: UseKind::Name(alias.clone()),
                line: at,
            });
        }
        self.extern_crates.push(ExternCrate {
            name,
            rename,
            line: at,
            macro_use: macro_use.is_some(),
        });
    }

    fn visit_item_fn(&mut self, i: &'ast syn::ItemFn) {
        if let Some(name) = exported_symbol(&i.attrs, &i.sig.ident) {
            self.exports.push(Symbol {
                name,
                line: line(&i.sig.ident),
            });
        }
        visit::visit_item_fn(self, i);
    }

    fn visit_impl_item_fn(&mut self, i: &'ast syn::ImplItemFn) {
        if let Some(name) = exported_symbol(&i.attrs, &i.sig.ident) {
            self.exports.push(Symbol {
                name,
                line: line(&i.sig.ident),
            });
        }
        visit::visit_impl_item_fn(self, i);
    }

    fn visit_item_static(&mut self, i: &'ast syn::ItemStatic) {
        if let Some(name) = exported_symbol(&i.attrs, &i.ident) {
            self.exports.push(Symbol {
                name,
                line: line(&i.ident),
            });
        }
        visit::visit_item_static(self, i);
    }

    fn visit_item_foreign_mod(&mut self, i: &'ast syn::ItemForeignMod) {
        for item in &i.items {
            let (attrs, id) = match item {
                syn::ForeignItem::Fn(f) => (&f.attrs, &f.sig.ident),
                syn::ForeignItem::Static(s) => (&s.attrs, &s.ident),
                _ => continue,
            };
            if is_test_only(attrs) {
                continue;
            }
            self.foreign.push(Symbol {
                name: name_value(attrs, "link_name").unwrap_or_else(|| ident(id)),
                line: line(id),
            });
        }
        visit::visit_item_foreign_mod(self, i);
    }

    fn visit_item_macro(&mut self, i: &'ast syn::ItemMacro) {
        if !i.mac.path.is_ident("macro_rules") {
            return visit::visit_item_macro(self, i);
        }
        let Some(name) = i.ident.as_ref() else {
            return;
        };
        let exported = i.attrs.iter().any(|a| a.path().is_ident("macro_export"));
        let name = ident(name);
        if exported {
            self.macros.push(name.clone());
        }
        // A macro's body is code of each module that invokes it, not of
        // this one: its paths are kept with the macro.
        let mut body = Vec::new();
        for t in transcribers(i.mac.tokens.clone()) {
            tokens(t, &mut body);
        }
        self.items.insert(name.clone());
        self.macro_defs.push(MacroDef {
            name,
            exported,
            line: i.mac.path.segments[0].ident.span().start().line,
            body,
        });
    }

    // `pub(in crate::a)` only limits who may name the item.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    // `<T>::f` names an associated item of `T`, nothing by path;
    // `<T as a::Tr>::f` names `a::Tr`.
    fn visit_expr_path(&mut self, i: &'ast syn::ExprPath) {
        self.qualified(i.qself.as_ref(), &i.path);
    }

    fn visit_type_path(&mut self, i: &'ast syn::TypePath) {
        self.qualified(i.qself.as_ref(), &i.path);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if let Some(first) = p.segments.first() {
            self.refs.push(Ref {
                path: path_segments(p),
                global: p.leading_colon.is_some(),
                line: line(&first.ident),
                call: false,
            });
        }
        visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        if let Some(first) = m.path.segments.first() {
            self.refs.push(Ref {
                path: path_segments(&m.path),
                global: m.path.leading_colon.is_some(),
                line: line(&first.ident),
                call: true,
            });
        }
        tokens(m.tokens.clone(), &mut self.refs);
    }
}

impl<'ast> Collector<'ast> {
    fn qualified(&mut self, qself: Option<&'ast syn::QSelf>, path: &'ast syn::Path) {
        match qself {
            None => self.visit_path(path),
            Some(q) => {
                self.visit_type(&q.ty);
                if let Some(first) = path.segments.first().filter(|_| q.position > 0) {
                    self.refs.push(Ref {
                        path: path_segments(path)[..q.position].to_vec(),
                        global: path.leading_colon.is_some(),
                        line: line(&first.ident),
                        call: false,
                    });
                }
                for s in path.segments.iter() {
                    self.visit_path_arguments(&s.arguments);
                }
            }
        }
    }

    /// Flattens `use a::{b, c::d as e, f::*}` into one [`Use`] per leaf.
    fn use_tree(&mut self, t: &syn::UseTree, global: bool, public: bool, prefix: &mut Vec<String>) {
        use syn::UseTree::*;
        let mut leaf = |prefix: &[String], segment: Option<&proc_macro2::Ident>, kind, at| {
            let mut path = prefix.to_vec();
            path.extend(segment.map(ident));
            self.uses.push(Use {
                path,
                global,
                public,
                kind,
                line: at,
            });
        };
        match t {
            Path(p) => {
                prefix.push(ident(&p.ident));
                self.use_tree(&p.tree, global, public, prefix);
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
                UseKind::Name(ident(&n.ident)),
                line(&n.ident),
            ),
            Rename(r) if r.ident == "self" => leaf(
                prefix,
                None,
                UseKind::Name(ident(&r.rename)),
                line(&r.ident),
            ),
            Rename(r) => leaf(
                prefix,
                Some(&r.ident),
                UseKind::Name(ident(&r.rename)),
                line(&r.ident),
            ),
            Glob(g) => leaf(prefix, None, UseKind::Glob, g.star_token.span.start().line),
            Group(g) => {
                for t in &g.items {
                    self.use_tree(t, global, public, prefix);
                }
            }
        }
    }
}

/// The transcribers of a `macro_rules!` body (`(matcher) => {transcriber};
/// ...`): what an invocation expands to. The matchers name nothing. A body
/// of another shape is read whole.
fn transcribers(body: TokenStream) -> Vec<TokenStream> {
    let tts: Vec<TokenTree> = body.clone().into_iter().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 < tts.len() {
        let arrow = matches!(&tts[i], TokenTree::Punct(p) if p.as_char() == '=' && p.spacing() == Spacing::Joint)
            && matches!(&tts[i + 1], TokenTree::Punct(p) if p.as_char() == '>');
        if let (true, TokenTree::Group(g)) = (arrow, &tts[i + 2]) {
            out.push(g.stream());
            i += 3;
        } else {
            i += 1;
        }
    }
    if out.is_empty() {
        out.push(body);
    }
    out
}

/// Keywords that start no path (`crate`, `self`, `super`, `Self` do).
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern", "false",
    "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "static", "struct", "trait", "true", "type", "unsafe", "use", "where", "while",
    "yield",
];

/// Paths in macro tokens, which syn leaves unparsed: every `a::b::c`, each
/// `::k::x` (global), `$crate::b` (kept as `$crate`, which a macro body's
/// expansion reads as its own crate), group by group; a path followed by
/// `!(...)` is a macro invocation. Not paths: a `$name` macro variable and
/// what follows it, keywords, the `n` of `<T>::n`.
fn tokens(stream: TokenStream, out: &mut Vec<Ref>) {
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
    let keyword = |i: usize| ident(i).is_some_and(|id| KEYWORDS.contains(&id.to_string().as_str()));
    // A `::` at `i` that starts a path: not after `>` (`<T>::n`,
    // `Vec::<u8>::new`) nor after anything a path could continue.
    let leading = |i: usize| {
        colons(i)
            && (i == 0
                || keyword(i - 1)
                || matches!(&tts[i - 1], TokenTree::Punct(p) if p.as_char() != '>' && p.as_char() != ':'))
    };
    let mut i = 0;
    while i < tts.len() {
        if let TokenTree::Group(g) = &tts[i] {
            tokens(g.stream(), out);
            i += 1;
            continue;
        }
        let global = leading(i);
        let dollar = punct(i, '$');
        let start = if global {
            i + 2
        } else if dollar {
            i + 1
        } else {
            i
        };
        let Some(first) = ident(start) else {
            // `::` after `>`: the rest of a qualified path, not ours.
            i += if colons(i) { 3 } else { 1 };
            continue;
        };
        if keyword(start) {
            i = start + 1;
            continue;
        }
        let mut path = vec![first.to_string()];
        let mut j = start + 1;
        while colons(j) {
            match ident(j + 2) {
                Some(s) => path.push(s.to_string()),
                None => break,
            }
            j += 3;
        }
        // `$crate` is the macro's crate; any other `$name` a variable.
        if dollar {
            if path[0] != "crate" {
                i = j;
                continue;
            }
            path[0] = "$crate".into();
        }
        let call = punct(j, '!') && matches!(tts.get(j + 1), Some(TokenTree::Group(_)));
        out.push(Ref {
            path,
            global,
            line: line(first),
            call,
        });
        i = j;
    }
}
