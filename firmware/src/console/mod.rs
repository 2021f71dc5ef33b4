//! The SCLP console: ASCII (VT220) and line mode, one SCCB per line.
//!
//! Output is collected a line at a time and written to every console the
//! SCLP says it accepts. `Console` is a ufmt sink; use the `out!` macro.

pub mod sclp;

use crate::arch::global::Global;
use crate::arch::handlers::{self, Registration};
use crate::arch::smp;
use crate::deadline::critical;
use crate::ebcdic::CodePage;
use crate::line::LineBuffer;
use crate::sccb;
use core::sync::atomic::{AtomicU8, Ordering};

/// The line-mode console's code page (QEMU's and an LPAR's read 500,
/// z/VM's 037); set once the host is known.
static CODE_PAGE: AtomicU8 = AtomicU8::new(0);

/// Writes line-mode text in `cp` from now on.
pub fn set_code_page(cp: CodePage) {
    CODE_PAGE.store(
        match cp {
            CodePage::Cp500 => 0,
            CodePage::Cp037 => 1,
        },
        Ordering::SeqCst,
    );
}

fn code_page() -> CodePage {
    match CODE_PAGE.load(Ordering::SeqCst) {
        0 => CodePage::Cp500,
        _ => CodePage::Cp037,
    }
}

const TO_ASCII: u8 = 1;
const TO_LINE_MODE: u8 = 2;
static TARGETS: AtomicU8 = AtomicU8::new(TO_ASCII | TO_LINE_MODE);

/// Each CPU collects its own line: lines go out whole, one SCLP write
/// each, whichever CPUs write at once.
static LINES: [Global<LineBuffer>; smp::MAX_CPUS] =
    [const { Global::new(LineBuffer::new()) }; smp::MAX_CPUS];

fn this_line() -> &'static Global<LineBuffer> {
    &LINES[smp::cpu_number().min(smp::MAX_CPUS - 1)]
}

/// Takes the service signal, sets the event mask and learns which consoles
/// exist. Without an answer both are tried on every line (z/VM advertises
/// a VT220 that rejects data). The console owns the service signal while
/// the registration returned lasts: keep it for the whole run.
pub fn init() -> Registration {
    let signal = handlers::on_external(sclp::EXT_SERVICE_SIGNAL, sclp::on_service_signal);
    let accepted = sclp::request(sccb::CMD_WRITE_EVENT_MASK, sccb::build_event_mask, |s| {
        (sccb::response_code(s) == sccb::RC_NORMAL).then(|| sccb::sclp_receive_mask(s))
    });
    if let Ok(Some(mask)) = accepted {
        let mut t = 0;
        if u64::from(mask) & sccb::event_mask_bit(sccb::EVENT_ASCII, 4) != 0 {
            t |= TO_ASCII;
        }
        if u64::from(mask) & sccb::event_mask_bit(sccb::EVENT_MESSAGE, 4) != 0 {
            t |= TO_LINE_MODE;
        }
        if t != 0 {
            TARGETS.store(t, Ordering::SeqCst);
        }
    }
    signal
}

fn write_line(text: &[u8]) {
    let targets = TARGETS.load(Ordering::SeqCst);
    if targets & TO_ASCII != 0 {
        let ok = sclp::request(
            sccb::CMD_WRITE_EVENT_DATA,
            |s| sccb::build_ascii_write(s, text),
            |s| sccb::response_code(s) == sccb::RC_NORMAL,
        );
        // A VT220 that refuses data is not used again; line mode remains.
        if ok == Ok(false) && targets & TO_LINE_MODE != 0 {
            TARGETS.fetch_and(!TO_ASCII, Ordering::SeqCst);
        }
    }
    if targets & TO_LINE_MODE != 0 {
        let body = text.strip_suffix(b"\n").unwrap_or(text);
        let _ = sclp::request(
            sccb::CMD_WRITE_EVENT_DATA,
            |s| sccb::build_line_write(s, body, code_page()),
            |_| (),
        );
    }
}

/// Writes out a partial line, if any.
pub fn flush() {
    critical(|| {
        let buf = this_line();
        let mut line = buf.get();
        if let Some(partial) = line.cut_off() {
            write_line(partial.as_bytes());
        }
        buf.set(line);
    });
}

/// A ufmt sink for the console.
pub struct Console;

impl ufmt::uWrite for Console {
    type Error = core::convert::Infallible;

    fn write_str(&mut self, s: &str) -> Result<(), Self::Error> {
        critical(|| {
            let buf = this_line();
            let mut line = buf.get();
            line.push(s.as_bytes(), |text, rest| {
                // What an interrupt ending the run meanwhile would find.
                buf.set(*rest);
                write_line(text);
            });
            buf.set(line);
        });
        Ok(())
    }
}

/// Makes the console usable by a report that ends the run from wherever
/// it was interrupted: a console request in flight is let finish, and a
/// line left half written (a result line, say) is closed as a diagnostic,
/// so the bail-out that follows starts a line of its own.
pub fn take_over_for_report() {
    sclp::take_over();
    let buf = this_line();
    let mut line = buf.get();
    let partial = line.cut_off();
    buf.set(line);
    if let Some(p) = partial {
        crate::out!(
            "# output cut off here: '{}'\n",
            crate::fmt::Escaped(p.as_bytes())
        );
    }
}

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let _ = ufmt::uWrite::write_str(self, s);
        Ok(())
    }
}

/// `out!("fmt", args..)`: ufmt-formatted console output.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        let mut c = $crate::console::Console;
        let _ = ufmt::uwrite!(c, $($arg)*);
    }};
}
