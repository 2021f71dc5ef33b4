/*
 * memcpy, memmove, memset, memcmp and bcmp, which the compiler emits calls
 * to and which the s390x-unknown-linux-gnu target expects from a C library.
 * MVC moves up to 256 bytes left to right, one byte at a time in effect,
 * so it also serves forward overlapping moves and memset's propagation.
 */

	.text

/* void *memcpy(void *dst r2, const void *src r3, size_t n r4) */
	.globl	memcpy
memcpy:
	ltgr	%r4, %r4
	jz	9f
	lgr	%r1, %r2
	aghi	%r4, -1
	srlg	%r5, %r4, 8
	ltgr	%r5, %r5
	jz	2f
1:	mvc	0(256, %r1), 0(%r3)
	la	%r1, 256(%r1)
	la	%r3, 256(%r3)
	brctg	%r5, 1b
2:	larl	%r5, 3f
	ex	%r4, 0(%r5)
9:	br	%r14
3:	mvc	0(1, %r1), 0(%r3)

/* void *memmove(void *dst r2, const void *src r3, size_t n r4) */
	.globl	memmove
memmove:
	clgr	%r2, %r3
	jle	memcpy
	lgr	%r1, %r3
	agr	%r1, %r4
	clgr	%r2, %r1
	jhe	memcpy
	/* dst overlaps the tail of src: copy backwards. */
	ltgr	%r4, %r4
	jz	9f
1:	aghi	%r4, -1
	ic	%r0, 0(%r4, %r3)
	stc	%r0, 0(%r4, %r2)
	ltgr	%r4, %r4
	jnz	1b
9:	br	%r14

/* void *memset(void *dst r2, int c r3, size_t n r4) */
	.globl	memset
memset:
	ltgr	%r4, %r4
	jz	9f
	lgr	%r1, %r2
	stc	%r3, 0(%r1)
	aghi	%r4, -1
	jz	9f
	aghi	%r4, -1
	srlg	%r5, %r4, 8
	ltgr	%r5, %r5
	jz	2f
1:	mvc	1(256, %r1), 0(%r1)
	la	%r1, 256(%r1)
	brctg	%r5, 1b
2:	larl	%r5, 3f
	ex	%r4, 0(%r5)
9:	br	%r14
3:	mvc	1(1, %r1), 0(%r1)

/* int memcmp(const void *a r2, const void *b r3, size_t n r4); bcmp alike */
	.globl	memcmp
	.globl	bcmp
memcmp:
bcmp:
	ltgr	%r4, %r4
	jz	8f
1:	llgc	%r0, 0(%r2)
	llgc	%r1, 0(%r3)
	sgr	%r0, %r1
	jnz	7f
	la	%r2, 1(%r2)
	la	%r3, 1(%r3)
	brctg	%r4, 1b
8:	lghi	%r2, 0
	br	%r14
7:	lgr	%r2, %r0
	br	%r14

	.section .note.GNU-stack, "", @progbits
