//! `host-wait=`: how long a check waits for a change it asked the host
//! for (a CPU started, stopped or reset by SIGP, a plug, a resize, a link
//! change, a reconnect, an input event). Each such wait has a default of
//! its own; the command line replaces them all, shorter for a test whose
//! change never comes, longer for a slow host. Set once, before the first
//! check runs (and before the other CPUs are started).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::cmdline::Config;

/// Microseconds; 0 when `host-wait=` was not given.
static GIVEN_US: AtomicU64 = AtomicU64::new(0);

pub fn set(cfg: &Config) {
    let us = cfg.host_wait_ms.map_or(0, |ms| ms.saturating_mul(1000));
    GIVEN_US.store(us, Ordering::Relaxed);
}

/// How long to wait where the check's own default is `default_us`.
pub fn us(default_us: u64) -> u64 {
    match GIVEN_US.load(Ordering::Relaxed) {
        0 => default_us,
        given => given,
    }
}

/// The wait where the default is `default_us`, as failure messages give
/// it: "10 s", or "1500 ms" when it is not whole seconds.
pub fn text(default_us: u64) -> alloc::string::String {
    shown(us(default_us))
}

fn shown(us: u64) -> alloc::string::String {
    if us.is_multiple_of(1_000_000) {
        crate::format!("{} s", us / 1_000_000)
    } else {
        crate::format!("{} ms", us / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_given_wait_replaces_every_default_and_is_shown_as_given() {
        set(&crate::cmdline::parse(b"").unwrap());
        assert_eq!(us(10_000_000), 10_000_000);
        assert_eq!(text(10_000_000), "10 s");
        set(&crate::cmdline::parse(b"host-wait=1500").unwrap());
        assert_eq!(us(10_000_000), 1_500_000);
        assert_eq!(us(5_000_000), 1_500_000);
        assert_eq!(text(5_000_000), "1500 ms");
        set(&crate::cmdline::parse(b"host-wait=20000").unwrap());
        assert_eq!(text(5_000_000), "20 s");
        set(&crate::cmdline::parse(b"").unwrap());
    }
}
