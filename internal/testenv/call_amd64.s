#include "textflag.h"

// func CallSysV(fn, a0, a1, a2, a3, a4 uintptr) uintptr
TEXT ·CallSysV(SB),NOSPLIT,$0-56
	MOVQ	fn+0(FP), AX
	MOVQ	a0+8(FP), DI
	MOVQ	a1+16(FP), SI
	MOVQ	a2+24(FP), DX
	MOVQ	a3+32(FP), CX
	MOVQ	a4+40(FP), R8
	MOVQ	SP, R12 // callee-saved in System V
	ANDQ	$~15, SP
	CALL	AX
	MOVQ	R12, SP
	MOVQ	AX, ret+48(FP)
	RET
