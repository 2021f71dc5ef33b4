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
        matches!(self, Outcome::Pass)
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
}

impl<C> Check<C> {
    pub const fn new(name: &'static str, run: fn(&mut C) -> Outcome) -> Self {
        Check {
            name,
            run,
            timeout_ms: None,
            inject: None,
        }
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
