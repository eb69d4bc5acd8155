# Source of the CPL-0 stub for hardware KVM (monitor/hwstub.go); hwstub_test.go
# reassembles it with GNU as and checks the bytes match. It is placed at
# trampolineAddr+0x800.
.intel_syntax noprefix
.text
# Exception vectors 0-31, 8 bytes each, entered through the IDT on the
# vCPU's IST stack: each leaves the VM at once with hlt, and the monitor
# finds the vector from where it stopped. The padding is int3.
vectors:
.rept 32
	hlt
	.fill 7, 1, 0xcc
.endr
# Return to the guest program: the monitor points RSP at an iretq frame.
ret_user:
	iretq
# The exit-path probe: one system call from user mode (monitor/probe.go).
probe:
	syscall
# MSR_CSTAR: a system call from 32-bit code, which Atoll does not run.
compat:
	hlt
