//! DIAGNOSE hypercalls. DIAG 0x500 follows the kvm_para ABI: function
//! number in r1, arguments in r2-r7, result in r2.

use core::arch::asm;

/// DIAG 0x500 with function `nr` and up to six arguments.
pub fn diag500(nr: u64, args: [u64; 6]) -> u64 {
    let ret: u64;
    // SAFETY: the hypervisor only reads the registers and may write r2;
    // a host without the function raises a program interrupt instead,
    // which the caller expects or reports.
    unsafe {
        asm!(
            "diag %r2, %r4, 0x500",
            in("r1") nr,
            inout("r2") args[0] => ret,
            in("r3") args[1],
            in("r4") args[2],
            in("r5") args[3],
            in("r6") args[4],
            in("r7") args[5],
            options(nostack),
        )
    };
    ret
}

/// The legacy s390-virtio transport's functions.
pub const LEGACY_NOTIFY: u64 = 0;
pub const LEGACY_RESET: u64 = 1;
pub const LEGACY_SET_STATUS: u64 = 2;
