/*
 * Offsets and constants shared by boot/head.S and firmware/src/arch.
 * The Rust side reads this file at compile time (arch/layout.rs) and
 * asserts that its layouts give the same numbers: arch/lowcore.rs (the
 * lowcore areas), arch/context.rs (the interrupt frame, the classes) and
 * arch/recovery.rs. Values are numbers, names defined here, or a
 * parenthesised sum or difference of those.
 */
#ifndef ZVTEST_LAYOUT_H
#define ZVTEST_LAYOUT_H

#define STACK_FRAME_OVERHEAD	160

/* Interrupt classes, in lowcore order. */
#define CLASS_RESTART		0
#define CLASS_EXTERNAL		1
#define CLASS_SVC		2
#define CLASS_PROGRAM		3
#define CLASS_MCCK		4
#define CLASS_IO		5

#define LC_OLD_PSWS		0x120
#define LC_NEW_PSWS		0x1a0
#define LC_NEW_PSWS_LEN		96
/* Software area of the lowcore: one 128-byte register save area a class. */
#define LC_SAVE_AREA		0x200
#define LC_SAVE_AREA_STRIDE	0x80
#define LC_SAVE_AREA_SHIFT	7
#define LC_RESUME_PSW		0x580
/* A CPU's own: its number, and what secondary_start starts it with. */
#define LC_CPU_NUMBER		0x5a0
#define LC_CPU_STACK		0x5a8
#define LC_CPU_ENTRY		0x5b0
#define LC_CPU_ARG		0x5b8

/* Interrupt frame: ABI save area, then struct InterruptContext. */
#define CTX			STACK_FRAME_OVERHEAD
#define CTX_GPRS		(CTX + 0)
#define CTX_PSW			(CTX + 128)
#define CTX_FPC			(CTX + 144)
#define CTX_FPRS		(CTX + 152)
#define FRAME_SIZE		(CTX + 280)

/* struct Recovery used by zvtest_try_call / zvtest_try_abort. */
#define REC_GPRS		0
#define REC_FPRS		80

/* QEMU's parameter area for Linux-style images (hw/s390x/ipl.c). */
#define IPL_PARAMS		0x10400
#define IPL_CMDLINE_SIZE_ADDR	0x10430
#define IPL_CMDLINE		0x10480
#define IPL_PARAMS_END		0x11000
#define IPL_CMDLINE_MAX		(IPL_PARAMS_END - IPL_CMDLINE)
/* Not ASCII: no command line reached us. */
#define IPL_CMDLINE_NOT_PASSED	0xff

#define PSW_MASK_64		0x0000000180000000
#define PSW_MASK_DISABLED_WAIT	0x0002000180000000
/* Bits 45 (AFP registers) and 54 (service signal) over the reset value 0xe0. */
#define CR0_INITIAL		0x00000000000402e0
#define WAIT_CODE_MAIN_RETURNED	0x0dead002

#endif
