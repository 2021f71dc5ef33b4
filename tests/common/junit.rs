//! Each boot's JUnit report, `<scenario>.junit.xml` beside its console log
//! (`cargo xtask test` merges them into target/junit.xml).
//!
//! The report is written as the boot ended, then settled when the test's
//! thread ends by what the test made of it ([`junit::settle`]):
//! - the test failed: a `<scenario>.test` failure is added (whatever the
//!   boot's verdict, the test's own output says why);
//! - the test passed on a failing verdict, i.e. it wanted that failure
//!   (`fails_with`, `check(&o, !o.passed(), ..)`): the failures become
//!   skipped "expected failure" cases, so that CI shows the suite green
//!   and still shows what failed;
//! - the test passed on a passing verdict: the report stays as written.
//!
//! A test killed (a timeout) keeps the report as the boot left it.

use qemu_runner::junit;
use qemu_runner::Run;
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::Once;

struct Written {
    path: PathBuf,
    suite: junit::TestSuite,
    passed: bool,
}

/// The boots of this thread's test, settled when the thread ends.
#[derive(Default)]
struct Boots(Vec<Written>);

thread_local! {
    static BOOTS: RefCell<Boots> = RefCell::new(Boots::default());
    static PANICKED: Cell<bool> = const { Cell::new(false) };
}

/// Writes the report of `run` to `path` and has it settled at the end of
/// the test (see the module's text).
#[track_caller]
pub fn record(run: &Run, path: PathBuf) {
    watch_panics();
    let suite = junit::of_run(run);
    if let Err(e) = junit::write(&path, [suite.clone()]) {
        panic!("scenario {}: {e}", run.scenario);
    }
    BOOTS.with(|b| {
        b.borrow_mut().0.push(Written {
            path,
            suite,
            passed: run.passed(),
        })
    });
}

/// A panic hook that notes which threads panicked (before the one there
/// was, which prints the panic as usual).
fn watch_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = PANICKED.try_with(|p| p.set(true));
            previous(info)
        }));
    });
}

impl Drop for Boots {
    fn drop(&mut self) {
        let panicked = PANICKED.try_with(Cell::get).unwrap_or(true);
        let thread = std::thread::current();
        let test = thread.name().unwrap_or("(unnamed)");
        for w in &mut self.0 {
            if junit::settle(&mut w.suite, w.passed, test, panicked) {
                // A thread's end is no place to panic: say it and go on.
                if let Err(e) = junit::write(&w.path, [w.suite.clone()]) {
                    eprintln!("{e}");
                }
            }
        }
    }
}
