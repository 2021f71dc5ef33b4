//! QMP, QEMU's monitor protocol, for hot plug, commands on console lines and
//! events: [`client`] builds the few commands we send, reads what comes
//! back and reports failures as a [`QmpError`]; `jobs` performs a
//! scenario's hot-plug steps once the firmware says it is ready, sends its
//! other commands when their console lines appear, and, when asked,
//! records QEMU's events until it ends.
//!
//! QEMU talks QMP over one end of a socket pair it inherits
//! (`QmpSocket`: nothing on disk that a killed runner could leave behind,
//! nothing another process could connect to). The runner does the
//! `qmp_capabilities` handshake while the guest boots. The console thread
//! tells the job the first appearance of each line it waits for. On
//! [`HOTPLUG_READY`](zvtest_contract::checks::markers::HOTPLUG_READY) the
//! job sends `device_add` / `device_del` in order (after each `device_del`
//! it waits for the `DEVICE_DELETED` event of that device); on the line of
//! a [`LineCommand`](crate::LineCommand) it sends that command, once. Every
//! QMP error and every timeout becomes one failure reason; so does a line
//! that never appears.

pub mod client;
pub(crate) mod jobs;
#[cfg(test)]
pub(crate) mod testing;

pub(crate) use client::QmpSocket;
pub use client::{
    balloon, classify, command, device_add, device_del, qmp_capabilities, Client, Deleted, Message,
    QmpError, QmpEvent, LOG_PREFIX, MAX_LINE, TIMEOUT,
};
pub(crate) use jobs::{spawn, Job, Report};
