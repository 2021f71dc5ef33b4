//! What every CPU writes to the console at once in `smp.console`, and the
//! host's check that each line arrived whole: lines collected per CPU and
//! written one SCLP write each never mix, whichever CPUs write together.

use alloc::string::String;
use alloc::vec::Vec;

/// Lines each CPU writes.
pub const CONSOLE_LINES: u32 = 16;
const LINE_PREFIX: &str = "# smp console cpu ";
const SUMMARY_PREFIX: &str = "# smp console: CPUs";

/// A console line without its "# " (a TAP reader keeps diagnostics so).
fn body(l: &str) -> &str {
    l.strip_prefix("# ").unwrap_or(l)
}

/// Line `k` of CPU `cpu` for `seed`: its name, then 20–180 seeded
/// printable characters.
pub fn console_line(seed: u64, cpu: usize, k: u32) -> String {
    let mut x = crate::stress::Rng::for_request(seed, 0x636f_6e73 + cpu as u64, u64::from(k));
    let len = 20 + x.below(161) as usize;
    let mut s = crate::format!("{}{} line {}: ", LINE_PREFIX, cpu, k);
    for _ in 0..len {
        s.push((b'!' + x.below(94) as u8) as char);
    }
    s
}

/// The line that tells the host which CPUs wrote (and the seed).
pub fn console_summary(seed: u64, cpus: &[usize]) -> String {
    let mut s = String::from(SUMMARY_PREFIX);
    for c in cpus {
        s.push_str(&crate::format!(" {}", c));
    }
    s.push_str(&crate::format!(
        " wrote {} lines each (seed {})",
        CONSOLE_LINES,
        seed
    ));
    s
}

/// Checks the console's `#` lines: where a summary says CPUs wrote, every
/// line each wrote must be there once, whole and in its order, and no
/// other line may claim to be one. Ok(None): no summary (the check did
/// not run); Ok(Some(n)): n lines checked.
pub fn check_console(lines: &[String]) -> Result<Option<usize>, String> {
    let lines: Vec<&str> = lines.iter().map(|l| body(l)).collect();
    let Some(summary) = lines.iter().find(|l| l.starts_with(body(SUMMARY_PREFIX))) else {
        return Ok(None);
    };
    let bad = || crate::format!("smp.console: unreadable summary '{}'", *summary);
    let rest = summary[body(SUMMARY_PREFIX).len()..].trim();
    let (cpus, tail) = rest.split_once(" wrote ").ok_or_else(bad)?;
    let seed: u64 = tail
        .rsplit_once("(seed ")
        .and_then(|(_, s)| s.strip_suffix(')'))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let cpus: Vec<usize> = cpus
        .split_whitespace()
        .map(|c| c.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let written: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with(body(LINE_PREFIX)))
        .collect();
    let mut expected: Vec<String> = Vec::new();
    for &cpu in &cpus {
        let mut next = 0usize;
        for k in 0..CONSOLE_LINES {
            let line = console_line(seed, cpu, k);
            let want = body(&line);
            match written[next..].iter().position(|l| *l == want) {
                Some(i) => next += i + 1,
                None => {
                    let seen = written.contains(&want);
                    return Err(crate::format!(
                        "smp.console: CPU {} line {} {} (seed {})",
                        cpu,
                        k,
                        if seen {
                            "out of order"
                        } else {
                            "missing or not whole"
                        },
                        seed
                    ));
                }
            }
            expected.push(String::from(want));
        }
    }
    if let Some(l) = written.iter().find(|l| !expected.iter().any(|e| e == **l)) {
        return Err(crate::format!(
            "smp.console: a line not as any CPU wrote it: '{}'",
            *l
        ));
    }
    if written.len() != expected.len() {
        return Err(crate::format!(
            "smp.console: {} lines, {} written by the CPUs",
            written.len(),
            expected.len()
        ));
    }
    Ok(Some(expected.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(seed: u64, cpus: &[usize]) -> Vec<String> {
        let mut v = vec![String::from("# heap: 1-2")];
        // Interleaved by line, as CPUs writing at once leave them.
        for k in 0..CONSOLE_LINES {
            for &c in cpus {
                v.push(console_line(seed, c, k));
            }
        }
        v.push(console_summary(seed, cpus));
        v
    }

    #[test]
    fn whole_lines_in_order_pass() {
        let v = console(7, &[0, 1, 3]);
        assert_eq!(check_console(&v), Ok(Some(3 * CONSOLE_LINES as usize)));
        assert_eq!(check_console(&v[..1]), Ok(None));
        // As a TAP reader keeps them: without the "# ".
        let kept: Vec<String> = v.iter().map(|l| body(l).to_string()).collect();
        assert_eq!(check_console(&kept), Ok(Some(3 * CONSOLE_LINES as usize)));
    }

    #[test]
    fn a_line_mixed_with_another_fails() {
        let mut v = console(7, &[0, 1]);
        // CPU 1's line cut in two by a piece of CPU 0's.
        let a = v[3].clone();
        let b = v[4].clone();
        v[3] = crate::format!("{}{}", &a[..30], &b[30..]);
        v[4] = crate::format!("{}{}", &b[..30], &a[30..]);
        let e = check_console(&v).unwrap_err();
        assert!(e.contains("missing or not whole"), "{e}");
    }

    #[test]
    fn missing_reordered_or_extra_lines_fail() {
        let mut v = console(9, &[0, 2]);
        v.remove(5);
        assert!(check_console(&v).unwrap_err().contains("missing"));
        let mut v = console(9, &[0, 2]);
        v.swap(1, 3);
        assert!(check_console(&v).unwrap_err().contains("out of order"));
        let mut v = console(9, &[0, 2]);
        v.insert(2, v[2].clone());
        assert!(check_console(&v).is_err(), "a line twice");
        let mut v = console(9, &[0, 2]);
        v.push(crate::format!("{}9 line 0: x", LINE_PREFIX));
        assert!(check_console(&v).unwrap_err().contains("not as any CPU"));
        let v = console(9, &[0, 2]);
        let mut w = v.clone();
        *w.last_mut().unwrap() = console_summary(10, &[0, 2]);
        assert!(check_console(&w).is_err(), "another seed");
    }
}
