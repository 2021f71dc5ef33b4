/*
 * zvtest entry and interrupt entry code.
 *
 * Entered either at 0x10000 in z/Architecture 64-bit mode (QEMU -kernel ELF)
 * or through the ESA/390 IPL PSW at absolute 0 in 31-bit mode (raw image,
 * LPAR, z/VM). The same instructions serve both until the SIGP below.
 */

#include "layout.h"

/* ---------------------------------------------------------------------- */
	.section .lowcore, "a"
	.globl	ipl_psw
ipl_psw:
	/* ESA/390 short PSW: bit 12 set, 31-bit addressing, start at _start. */
	.long	0x00080000, 0x80000000 + _start

/* ---------------------------------------------------------------------- */
	.section .head, "ax"
	.globl	_start
_start:
	/*
	 * Switch to z/Architecture. On a machine already in it (QEMU, CZAM)
	 * SIGP answers cc 1 or 2 and nothing changes. The CPU address in r0
	 * is ignored by this order. sam64 is valid from here on.
	 */
	lhi	%r1, 1
	slr	%r0, %r0
	sigp	%r1, %r0, 0x12
	sam64

	/* New PSWs first: any fault from here on gets a report. */
	larl	%r1, new_psw_table
	mvc	LC_NEW_PSWS(LC_NEW_PSWS_LEN, %r0), 0(%r1)

	larl	%r15, __stack_top
	aghi	%r15, -STACK_FRAME_OVERHEAD
	xc	0(8, %r15), 0(%r15)

	/* Clear bss (8-byte aligned by the linker script). */
	larl	%r2, __bss_start
	larl	%r3, __bss_end
1:	clgr	%r2, %r3
	jhe	2f
	xc	0(8, %r2), 0(%r2)
	aghi	%r2, 8
	j	1b
2:
	/* CR0: AFP registers, service-signal subclass; keep the reset bits. */
	larl	%r1, cr0_initial
	lctlg	%c0, %c0, 0(%r1)
	lfpc	fpc_zero - cr0_initial(%r1)

	brasl	%r14, zvtest_main
	/* zvtest_main never returns; if it does, stop with a distinct code. */
	larl	%r1, returned_psw
	lpswe	0(%r1)

/*
 * Where a secondary CPU starts: its restart new PSW points here until it
 * runs (arch::smp). Its lowcore holds its stack, function and argument.
 */
	.globl	secondary_start
secondary_start:
	lg	%r15, LC_CPU_STACK
	aghi	%r15, -STACK_FRAME_OVERHEAD
	xc	0(8, %r15), 0(%r15)
	larl	%r1, cr0_initial
	lctlg	%c0, %c0, 0(%r1)
	lfpc	fpc_zero - cr0_initial(%r1)
	lg	%r2, LC_CPU_ARG
	lg	%r1, LC_CPU_ENTRY
	basr	%r14, %r1
	larl	%r1, returned_psw
	lpswe	0(%r1)

	.balign	8
cr0_initial:
	.quad	CR0_INITIAL
fpc_zero:
	.long	0
	.balign	8
returned_psw:
	.quad	PSW_MASK_DISABLED_WAIT, WAIT_CODE_MAIN_RETURNED

	.balign	8
new_psw_table:
	.quad	PSW_MASK_64, restart_entry
	.quad	PSW_MASK_64, external_entry
	.quad	PSW_MASK_64, svc_entry
	.quad	PSW_MASK_64, program_entry
	.quad	PSW_MASK_64, mcck_entry
	.quad	PSW_MASK_64, io_entry

/* ---------------------------------------------------------------------- */
	.section .ipl_params, "aw"
	.globl	ipl_params
ipl_params:
	/*
	 * QEMU's parameter area for Linux-style images. The doubleword at
	 * 0x10430 tells QEMU how long a command line (with its NUL) the area
	 * at 0x10480 holds; the marker at 0x10480 stays only if QEMU copied
	 * none (an -append QEMU dropped, or no QEMU at all).
	 */
	.fill	IPL_CMDLINE_SIZE_ADDR - IPL_PARAMS, 1, 0
	.quad	IPL_CMDLINE_MAX
	.fill	IPL_CMDLINE - IPL_CMDLINE_SIZE_ADDR - 8, 1, 0
	.byte	IPL_CMDLINE_NOT_PASSED
	.fill	IPL_PARAMS_END - IPL_CMDLINE - 1, 1, 0

/* ---------------------------------------------------------------------- */
	.text

/*
 * Interrupt entry: save the interrupted context in a frame on the
 * interrupted stack and call zvtest_interrupt(ctx, class). Returning from
 * it resumes ctx->psw, which the handler may have changed.
 */
	.macro	INTERRUPT_ENTRY name, class
	.globl	\name
\name:
	stmg	%r0, %r15, LC_SAVE_AREA + \class * LC_SAVE_AREA_STRIDE
	.if	\class == CLASS_PROGRAM
	/*
	 * A program check raised by this entry code itself (typically a
	 * wild r15) would recur forever: move to the emergency stack.
	 */
	lg	%r1, LC_OLD_PSWS + \class * 16 + 8
	larl	%r2, interrupt_entry_start
	clgr	%r1, %r2
	jl	3f
	larl	%r2, interrupt_entry_end
	clgr	%r1, %r2
	jhe	3f
	larl	%r15, __emergency_stack_top
3:
	.endif
	lghi	%r3, \class
	j	interrupt_common
	.endm

interrupt_entry_start:
	INTERRUPT_ENTRY restart_entry, CLASS_RESTART
	INTERRUPT_ENTRY external_entry, CLASS_EXTERNAL
	INTERRUPT_ENTRY svc_entry, CLASS_SVC
	INTERRUPT_ENTRY program_entry, CLASS_PROGRAM
	INTERRUPT_ENTRY mcck_entry, CLASS_MCCK
	INTERRUPT_ENTRY io_entry, CLASS_IO

/* r3 = class, r15 = stack to use, registers saved in the class save area. */
interrupt_common:
	/* Round down to 8 bytes and make room for the frame. */
	nill	%r15, 0xfff8
	aghi	%r15, -FRAME_SIZE
	/* save area = LC_SAVE_AREA + class * stride; old PSW = LC_OLD_PSWS + class * 16 */
	lgr	%r1, %r3
	sllg	%r1, %r1, LC_SAVE_AREA_SHIFT
	mvc	CTX_GPRS(128, %r15), LC_SAVE_AREA(%r1)
	lgr	%r1, %r3
	sllg	%r1, %r1, 4
	mvc	CTX_PSW(16, %r15), LC_OLD_PSWS(%r1)
	stfpc	CTX_FPC(%r15)
	std	%f0, CTX_FPRS + 0 * 8(%r15)
	std	%f1, CTX_FPRS + 1 * 8(%r15)
	std	%f2, CTX_FPRS + 2 * 8(%r15)
	std	%f3, CTX_FPRS + 3 * 8(%r15)
	std	%f4, CTX_FPRS + 4 * 8(%r15)
	std	%f5, CTX_FPRS + 5 * 8(%r15)
	std	%f6, CTX_FPRS + 6 * 8(%r15)
	std	%f7, CTX_FPRS + 7 * 8(%r15)
	std	%f8, CTX_FPRS + 8 * 8(%r15)
	std	%f9, CTX_FPRS + 9 * 8(%r15)
	std	%f10, CTX_FPRS + 10 * 8(%r15)
	std	%f11, CTX_FPRS + 11 * 8(%r15)
	std	%f12, CTX_FPRS + 12 * 8(%r15)
	std	%f13, CTX_FPRS + 13 * 8(%r15)
	std	%f14, CTX_FPRS + 14 * 8(%r15)
	std	%f15, CTX_FPRS + 15 * 8(%r15)
	xc	0(8, %r15), 0(%r15)
	la	%r2, CTX(%r15)
	brasl	%r14, zvtest_interrupt

	lfpc	CTX_FPC(%r15)
	ld	%f0, CTX_FPRS + 0 * 8(%r15)
	ld	%f1, CTX_FPRS + 1 * 8(%r15)
	ld	%f2, CTX_FPRS + 2 * 8(%r15)
	ld	%f3, CTX_FPRS + 3 * 8(%r15)
	ld	%f4, CTX_FPRS + 4 * 8(%r15)
	ld	%f5, CTX_FPRS + 5 * 8(%r15)
	ld	%f6, CTX_FPRS + 6 * 8(%r15)
	ld	%f7, CTX_FPRS + 7 * 8(%r15)
	ld	%f8, CTX_FPRS + 8 * 8(%r15)
	ld	%f9, CTX_FPRS + 9 * 8(%r15)
	ld	%f10, CTX_FPRS + 10 * 8(%r15)
	ld	%f11, CTX_FPRS + 11 * 8(%r15)
	ld	%f12, CTX_FPRS + 12 * 8(%r15)
	ld	%f13, CTX_FPRS + 13 * 8(%r15)
	ld	%f14, CTX_FPRS + 14 * 8(%r15)
	ld	%f15, CTX_FPRS + 15 * 8(%r15)
	/* Interrupts stay disabled until lpswe, so one resume slot is enough. */
	mvc	LC_RESUME_PSW(16, %r0), CTX_PSW(%r15)
	lmg	%r0, %r15, CTX_GPRS(%r15)
	lpswe	LC_RESUME_PSW
interrupt_entry_end:

/*
 * u64 zvtest_try_call(void (*f)(void *), void *arg, struct recovery *rec)
 *
 * Calls f(arg) and returns 0. zvtest_try_abort(rec, code) called later (from
 * an interrupt handler's resume PSW or from Rust) returns `code` from this
 * call instead, like longjmp. f must not leave anything needing drop live.
 */
	.globl	zvtest_try_call
zvtest_try_call:
	stmg	%r6, %r15, REC_GPRS(%r4)
	std	%f8, REC_FPRS + 0 * 8(%r4)
	std	%f9, REC_FPRS + 1 * 8(%r4)
	std	%f10, REC_FPRS + 2 * 8(%r4)
	std	%f11, REC_FPRS + 3 * 8(%r4)
	std	%f12, REC_FPRS + 4 * 8(%r4)
	std	%f13, REC_FPRS + 5 * 8(%r4)
	std	%f14, REC_FPRS + 6 * 8(%r4)
	std	%f15, REC_FPRS + 7 * 8(%r4)
	lgr	%r6, %r4
	lgr	%r1, %r2
	lgr	%r2, %r3
	aghi	%r15, -STACK_FRAME_OVERHEAD
	xc	0(8, %r15), 0(%r15)
	basr	%r14, %r1
	lmg	%r6, %r15, REC_GPRS(%r6)
	lghi	%r2, 0
	br	%r14

/* void zvtest_try_abort(struct recovery *rec, u64 code) -- does not return */
	.globl	zvtest_try_abort
zvtest_try_abort:
	ld	%f8, REC_FPRS + 0 * 8(%r2)
	ld	%f9, REC_FPRS + 1 * 8(%r2)
	ld	%f10, REC_FPRS + 2 * 8(%r2)
	ld	%f11, REC_FPRS + 3 * 8(%r2)
	ld	%f12, REC_FPRS + 4 * 8(%r2)
	ld	%f13, REC_FPRS + 5 * 8(%r2)
	ld	%f14, REC_FPRS + 6 * 8(%r2)
	ld	%f15, REC_FPRS + 7 * 8(%r2)
	lmg	%r6, %r15, REC_GPRS(%r2)
	lgr	%r2, %r3
	br	%r14

	.section .note.GNU-stack, "", @progbits
