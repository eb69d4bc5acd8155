package testenv

// CallSysV calls the System V x86-64 function at fn with five integer
// arguments (rdi, rsi, rdx, rcx, r8) and returns its rax: how tests run
// hand-assembled guest code, such as the vDSO's, natively. The function
// runs on the calling goroutine's stack, so it MUST use no more than a few
// words of it, and MUST NOT call back into Go; it may clobber the System V
// caller-saved registers.
func CallSysV(fn, a0, a1, a2, a3, a4 uintptr) uintptr
