#include "textflag.h"

// func doorbell(addr uintptr)
//
// A plain 4-byte store, never an atomic read-modify-write: the address
// is no memory, and the host kernel completes only writes there.
TEXT ·doorbell(SB),NOSPLIT,$0-8
	MOVQ	addr+0(FP), AX
	MOVL	$1, (AX)
	RET
