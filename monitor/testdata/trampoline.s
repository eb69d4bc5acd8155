# Source of the syscall trampoline (monitor/trampoline.go); trampoline_test.go
# reassembles it with GNU as and checks the bytes match. H must equal
# sigTableAddr. It runs in user mode on paravirtual KVM and at CPL 0 on
# hardware KVM (SYSCALL changes privilege there): the fast path returns
# with popfq/jmp from user mode and with sysretq from CPL 0.
.intel_syntax noprefix
.text
.equ H, 0x203000
.equ F, H+0x208
.equ R, H+0x410
.equ M, H+0x618
entry:
	cmp rax, 13
	jne slow
	cmp r10, 8
	jne slow
	cmp rdi, 64
	ja slow
	test rdi, rdi
	jz slow
	test rsi, rsi
	jz 1f
	cmp rdi, 9
	je slow
	cmp rdi, 19
	je slow
	cmp rsi, rdx
	je slow
	mov rax, [rsi]
	mov rax, [rsi+24]
1:	test rdx, rdx
	jz 2f
	mov rax, [rdi*8+H]
	mov [rdx], rax
	mov rax, [rdi*8+F]
	mov [rdx+8], rax
	mov rax, [rdi*8+R]
	mov [rdx+16], rax
	mov rax, [rdi*8+M]
	mov [rdx+24], rax
2:	test rsi, rsi
	jz 3f
	mov rax, [rsi+8]
	mov [rdi*8+F], rax
	mov rax, [rsi+16]
	mov [rdi*8+R], rax
	mov rax, [rsi+24]
	and rax, -0x40101
	mov [rdi*8+M], rax
	mov rax, [rsi]
	mov [rdi*8+H], rax
3:	mov eax, cs
	test al, 3
	jz 4f
	xor eax, eax
	push r11
	popfq
	jmp rcx
4:	xor eax, eax
	sysretq
slow:
	hlt
