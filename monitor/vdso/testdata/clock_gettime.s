# Source of vdsoClockGettime (monitor/vdso.go); vdso_test.go reassembles it
# with GNU as and checks the bytes match.
.intel_syntax noprefix
.text
.equ VVAR, -0x1800
clock_gettime:
	cmp edi, 1
	je 1f
	test edi, edi
	jne 9f
1:	lea r10, [rip + clock_gettime + VVAR]
2:	mov r8d, dword ptr [r10]
	test r8d, 1
	jnz 8f
	lfence
	rdtsc
	shl rdx, 32
	or rax, rdx
	sub rax, qword ptr [r10 + 8]
	jae 3f
	xor eax, eax
3:	mov ecx, dword ptr [r10 + 36]
	mov r9d, dword ptr [r10 + 32]
	mul r9
	shrd rax, rdx, cl
	add rax, qword ptr [r10 + 16]
	test edi, edi
	jne 4f
	add rax, qword ptr [r10 + 24]
4:	cmp r8d, dword ptr [r10]
	jne 2b
	mov ecx, 1000000000
	xor edx, edx
	div rcx
	mov qword ptr [rsi], rax
	mov qword ptr [rsi + 8], rdx
	xor eax, eax
	ret
8:	pause
	jmp 2b
9:	mov eax, 228
	syscall
	ret
