//! What a check is and what it returns, independent of the machine.

use crate::cmdline::{Config, Inject};
use crate::glob::selects;
use alloc::string::String;
use ufmt::uDisplay;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub expected: Option<String>,
    pub got: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Passed, with a note on something found but not compared (there
    /// was nothing on the command line to compare it with).
    PassNote(String),
    Fail(Failure),
    Skip(String),
}

impl Outcome {
    pub fn fail(message: &str) -> Outcome {
        Outcome::Fail(Failure {
            message: message.into(),
            expected: None,
            got: None,
        })
    }

    pub fn mismatch(message: &str, expected: impl uDisplay, got: impl uDisplay) -> Outcome {
        Outcome::Fail(Failure {
            message: message.into(),
            expected: Some(crate::format!("{}", expected)),
            got: Some(crate::format!("{}", got)),
        })
    }

    /// Pass if `expected == got`, else a mismatch that shows both.
    pub fn expect_eq<T: PartialEq + uDisplay>(message: &str, expected: T, got: T) -> Outcome {
        if expected == got {
            Outcome::Pass
        } else {
            Outcome::mismatch(message, expected, got)
        }
    }

    pub fn skip(reason: &str) -> Outcome {
        Outcome::Skip(reason.into())
    }

    pub fn is_pass(&self) -> bool {
        matches!(self, Outcome::Pass | Outcome::PassNote(_))
    }

    /// Keeps the first failure: `a.and_then(|| b)` runs `b` only if `a` passed.
    pub fn and_then(self, next: impl FnOnce() -> Outcome) -> Outcome {
        if self.is_pass() {
            next()
        } else {
            self
        }
    }
}

/// A named check over some machine context `C`.
pub struct Check<C> {
    pub name: &'static str,
    pub run: fn(&mut C) -> Outcome,
    /// Overrides the command line's default timeout.
    pub timeout_ms: Option<u64>,
    /// Fault-injection checks run only when asked for with `inject=`.
    pub inject: Option<Inject>,
    /// Its work grows with `stress=`, and so does its timeout.
    pub stressed: bool,
}

impl<C> Check<C> {
    pub const fn new(name: &'static str, run: fn(&mut C) -> Outcome) -> Self {
        Check {
            name,
            run,
            timeout_ms: None,
            inject: None,
            stressed: false,
        }
    }

    /// Marks a check whose work is multiplied by `stress=`.
    pub const fn stressed(mut self) -> Self {
        self.stressed = true;
        self
    }

    /// Its timeout under `cfg`: its own or the command line's, times the
    /// stress level if its work scales with it, plus `host-wait=` when
    /// given. A check's own timeout covers its work and one default wait
    /// for the host (a wait that runs out ends the check), so a longer
    /// host wait must not be cut short by it.
    pub fn timeout_ms(&self, cfg: &Config) -> u64 {
        let base = self.timeout_ms.unwrap_or(cfg.timeout_ms);
        let base = if self.stressed {
            base.saturating_mul(u64::from(cfg.stress))
        } else {
            base
        };
        base.saturating_add(cfg.host_wait_ms.unwrap_or(0))
    }

    pub const fn timeout(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    pub const fn injected(mut self, what: Inject) -> Self {
        self.inject = Some(what);
        self
    }

    pub fn is_selected(&self, cfg: &Config) -> bool {
        if let Some(what) = self.inject {
            return cfg.inject.contains(&what);
        }
        let wanted = cfg.only.is_empty() || cfg.only.iter().any(|s| selects(s, self.name));
        wanted && !cfg.skip.iter().any(|s| selects(s, self.name))
    }
}

/// Why the command line's selection cannot run, if it cannot: a selector
/// of `only=` or `skip=` that names none of the regular checks `names` (a
/// typo must never silently run a different selection; fault-injection
/// checks, `injected`, are chosen with `inject=` alone), or a selection
/// that leaves none of `names`.
pub fn selection_error(cfg: &Config, names: &[&str], injected: &[&str]) -> Option<String> {
    let groups = || {
        let mut g: alloc::vec::Vec<&str> = names
            .iter()
            .map(|n| n.split_once('.').map_or(*n, |(g, _)| g))
            .collect();
        g.dedup();
        g.join(", ")
    };
    for (option, selectors) in [("only", &cfg.only), ("skip", &cfg.skip)] {
        let Some(s) = selectors
            .iter()
            .find(|s| !names.iter().any(|n| selects(s, n)))
        else {
            continue;
        };
        let shown = crate::fmt::Escaped(s.as_bytes());
        return Some(if injected.iter().any(|n| selects(s, n)) {
            crate::format!(
                "{}={}: fault-injection checks are chosen with inject= alone",
                option,
                shown
            )
        } else {
            crate::format!(
                "{}={} selects no check (names are group.check, in lower case; groups: {})",
                option,
                shown,
                groups().as_str()
            )
        });
    }
    let any = names.iter().any(|n| {
        (cfg.only.is_empty() || cfg.only.iter().any(|s| selects(s, n)))
            && !cfg.skip.iter().any(|s| selects(s, n))
    });
    (!any && cfg.inject.is_empty())
        .then(|| String::from("only= and skip= together leave no check to run"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::parse;

    fn nop(_: &mut ()) -> Outcome {
        Outcome::Pass
    }

    #[test]
    fn selection() {
        let heap = Check::new("heap.stress", nop);
        let pgm = Check::new("pgm.operation", nop);
        let inj = Check::new("inject.fail", nop).injected(Inject::Fail);
        let all = parse(b"").unwrap();
        assert!(heap.is_selected(&all) && pgm.is_selected(&all) && !inj.is_selected(&all));
        let only = parse(b"only=pgm").unwrap();
        assert!(!heap.is_selected(&only) && pgm.is_selected(&only));
        let skip = parse(b"skip=heap.*").unwrap();
        assert!(!heap.is_selected(&skip) && pgm.is_selected(&skip));
        let injected = parse(b"inject=fail only=pgm").unwrap();
        assert!(inj.is_selected(&injected));
    }

    #[test]
    fn selections_that_select_nothing_are_refused() {
        let names = ["pgm.operation", "pgm.addressing", "heap.stress", "boot.svc"];
        let err = |line: &[u8]| selection_error(&parse(line).unwrap(), &names, &["inject.fail"]);
        for fine in [
            &b""[..],
            b"only=pgm",
            b"only=pgm.*,heap.stress",
            b"skip=heap",
            b"only=*.s?c",
            b"inject=fail only=pgm",
        ] {
            assert_eq!(err(fine), None, "{:?}", core::str::from_utf8(fine));
        }
        for (bad, named) in [
            (&b"only=pgm.opration"[..], "only=pgm.opration"),
            (b"only=pgmx", "only=pgmx"),
            (b"only=pgm,nothing", "only=nothing"),
            (b"skip=heap.strss", "skip=heap.strss"),
            (b"only=pg", "only=pg"),
        ] {
            let msg = err(bad).unwrap_or_default();
            assert!(
                msg.starts_with(&crate::format!("{} selects no check", named)),
                "{named}: {msg}"
            );
            assert!(msg.contains("groups: pgm, heap, boot"), "{msg}");
        }
        assert_eq!(
            err(b"only=pgm skip=pgm").as_deref(),
            Some("only= and skip= together leave no check to run")
        );
        assert_eq!(
            err(b"inject=fail skip=inject.fail").as_deref(),
            Some("skip=inject.fail: fault-injection checks are chosen with inject= alone")
        );
        // With an injected fault there is still something to run.
        assert_eq!(err(b"only=pgm skip=pgm inject=fail"), None);
    }

    #[test]
    fn timeouts_scale_with_stress_where_the_work_does() {
        let plain = Check::new("pgm.operation", nop).timeout(300);
        let heavy = Check::new("heap.stress", nop).stressed();
        let cfg = parse(b"stress=40 timeout=2000").unwrap();
        assert_eq!(plain.timeout_ms(&cfg), 300);
        assert_eq!(heavy.timeout_ms(&cfg), 80_000);
        assert_eq!(heavy.timeout_ms(&parse(b"").unwrap()), 5000);
        let waits = parse(b"stress=40 timeout=2000 host-wait=60000").unwrap();
        assert_eq!(plain.timeout_ms(&waits), 60_300);
        assert_eq!(heavy.timeout_ms(&waits), 140_000);
    }

    #[test]
    fn outcomes() {
        assert_eq!(Outcome::expect_eq("x", 1u32, 1u32), Outcome::Pass);
        let Outcome::Fail(f) = Outcome::expect_eq("code", 2u32, 6u32) else {
            panic!("must fail")
        };
        assert_eq!(
            (f.expected.unwrap(), f.got.unwrap()),
            ("2".into(), "6".into())
        );
        let first = Outcome::fail("a").and_then(|| Outcome::fail("b"));
        assert_eq!(first, Outcome::fail("a"));
        assert_eq!(
            Outcome::Pass.and_then(|| Outcome::skip("s")),
            Outcome::skip("s")
        );
    }
}
