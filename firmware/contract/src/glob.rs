//! Shell-style `*` / `?` matching for check selection.

/// True if `name` matches `pattern` (`*` any run, `?` one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Position after the last `*` and the name index it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi + 1, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// A selector names a check (`pgm.operation`), a glob (`pgm.*`), or a whole
/// group by its name (`pgm`, `hcall.diag288`).
pub fn selects(selector: &str, check: &str) -> bool {
    if glob_match(selector, check) {
        return true;
    }
    let plain = !selector.contains(['*', '?']);
    plain
        && check.len() > selector.len()
        && check.starts_with(selector)
        && check.as_bytes()[selector.len()] == b'.'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("pgm.*", "pgm.operation"));
        assert!(!glob_match("pgm.*", "pgmx.operation"));
        assert!(glob_match("*.op*", "pgm.operation"));
        assert!(glob_match("h?ap.*s", "heap.stress"));
        assert!(!glob_match("heap", "heap.stress"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn group_selection() {
        assert!(selects("heap", "heap.stress"));
        assert!(!selects("hea", "heap.stress"));
        assert!(selects("heap.stress", "heap.stress"));
        assert!(!selects("heap.s", "heap.stress"));
        assert!(selects("*.stress", "heap.stress"));
        assert!(selects("hcall.diag288", "hcall.diag288.start"));
        assert!(!selects("hcall.diag28", "hcall.diag288.start"));
        assert!(!selects("hcall.diag288.start", "hcall.diag288.start-x"));
    }
}
