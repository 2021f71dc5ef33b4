//! Stress traffic per device for the engine in `virtio::stress`: what
//! requests to make and what every answer must be. Pure, host-tested.

pub mod blk;
pub mod crypto;
pub mod fs;
pub mod gpu;
pub mod hostile;
pub mod notifications;
pub mod p9;
pub mod rng;
pub mod scsi;
pub mod serial;

use crate::format;
use alloc::string::String;

/// `N <what><note>: <the first few>; and M more`: the device errors a
/// stress recorded (the first few kept and named, all counted).
pub fn device_errors_text(count: u64, what: &str, first: &[String], note: &str) -> String {
    let more = count.saturating_sub(first.len() as u64);
    format!(
        "{} {}{}: {}{}",
        count,
        what,
        note,
        first.join("; ").as_str(),
        if more > 0 {
            format!("; and {} more", more)
        } else {
            String::new()
        }
        .as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::device_errors_text;
    use alloc::string::String;
    use alloc::vec;

    #[test]
    fn the_first_few_named_the_rest_counted() {
        let first = vec![String::from("a"), String::from("b")];
        assert_eq!(
            device_errors_text(5, "requests failed", &first, " (note)"),
            "5 requests failed (note): a; b; and 3 more"
        );
        assert_eq!(
            device_errors_text(2, "requests failed", &first, ""),
            "2 requests failed: a; b"
        );
    }
}
