#include "textflag.h"

TEXT ·hlt(SB),NOSPLIT,$0-0
	HLT
	RET

TEXT ·cli(SB),NOSPLIT,$0-0
	CLI
	RET

// lgdt from a zeroed descriptor on the stack.
TEXT ·lgdt(SB),NOSPLIT,$16-0
	MOVQ	$0, 0(SP)
	MOVQ	$0, 8(SP)
	LGDT	0(SP)
	RET

// mov $0x10, %ss: the kernel's data selector under Linux and atoll.
TEXT ·movSS(SB),NOSPLIT,$0-0
	MOVW	$0x10, AX
	MOVW	AX, SS
	RET

TEXT ·outb(SB),NOSPLIT,$0-0
	MOVB	$0, AL
	OUTB
	RET

TEXT ·rdmsr(SB),NOSPLIT,$0-0
	MOVL	$0x10, CX
	RDMSR
	RET

TEXT ·call(SB),NOSPLIT,$0-8
	MOVQ	addr+0(FP), AX
	CALL	AX
	RET
