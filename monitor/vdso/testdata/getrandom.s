# Source of vdsoGetrandom (monitor/vdso/image.go); vdso_test.go reassembles
# it with GNU as and checks the bytes match.
#
# ssize_t __vdso_getrandom(void *buf, size_t len, unsigned int flags,
#                          void *state, size_t state_len)
#
# Linux 6.11's interface (lib/vdso/getrandom.c), answered without an exit:
# each caller-owned state holds a ChaCha20 key taken from the getrandom
# system call, and a batch of output not yet returned. Every refill of the
# batch also overwrites the key with fresh output (fast key erasure), and
# bytes leave the batch as they are returned, so a state read later does
# not reveal earlier output. When the monitor bumps the generation in the
# parameters page, the next call takes a new key from the system call.
# Unknown flags, GRND_INSECURE with GRND_RANDOM, a state of another size,
# a state already in use (reentry) and a monitor that has not seeded yet
# (generation 0) are the system call. No secret is kept on the stack.
.intel_syntax noprefix
.text
.equ VVAR, -0x1880              # the parameters page, from getrandom
.equ GEN, 64                    # its u64 generation count
.equ KEY, 96                    # state: batch[96], key[32],
.equ SGEN, 128                  #   the generation of the key (u64),
.equ POS, 136                   #   bytes of the batch used (u8),
.equ INUSE, 137                 #   set while a call runs (u8)
.equ STATESIZE, 144
.equ MAXLEN, 0x2000000          # 32 MiB a call, as the system call
.equ RETRIED, 0x100             # in edx: the generation moved once already
.equ SYS_getrandom, 318

.macro quarterround             # on the rows xmm0..xmm3, xmm7 scratch
	paddd xmm0, xmm1
	pxor xmm3, xmm0
	movdqa xmm7, xmm3
	pslld xmm7, 16
	psrld xmm3, 16
	por xmm3, xmm7
	paddd xmm2, xmm3
	pxor xmm1, xmm2
	movdqa xmm7, xmm1
	pslld xmm7, 12
	psrld xmm1, 20
	por xmm1, xmm7
	paddd xmm0, xmm1
	pxor xmm3, xmm0
	movdqa xmm7, xmm3
	pslld xmm7, 8
	psrld xmm3, 24
	por xmm3, xmm7
	paddd xmm2, xmm3
	pxor xmm1, xmm2
	movdqa xmm7, xmm1
	pslld xmm7, 7
	psrld xmm1, 25
	por xmm1, xmm7
.endm

getrandom:
	cmp r8, -1                      # the parameters query?
	jne 1f
	test rdi, rdi
	jnz 1f
	test rsi, rsi
	jnz 1f
	test edx, edx
	jnz 1f
	mov dword ptr [rcx], STATESIZE  # struct vgetrandom_opaque_params
	mov dword ptr [rcx + 4], 3      # PROT_READ|PROT_WRITE
	mov dword ptr [rcx + 8], 0x28   # MAP_DROPPABLE|MAP_ANONYMOUS
	xor eax, eax
	mov dword ptr [rcx + 12], eax   # reserved[13]
	mov qword ptr [rcx + 16], rax
	mov qword ptr [rcx + 24], rax
	mov qword ptr [rcx + 32], rax
	mov qword ptr [rcx + 40], rax
	mov qword ptr [rcx + 48], rax
	mov qword ptr [rcx + 56], rax
	ret
1:	mov eax, ecx                    # a state must not straddle a page
	and eax, 0xfff
	cmp eax, 0x1000 - STATESIZE
	ja 8f
	test edx, ~7                    # beyond NONBLOCK|RANDOM|INSECURE
	jnz 9f
	mov eax, edx
	and eax, 6
	cmp eax, 6                      # INSECURE|RANDOM: EINVAL
	je 9f
	cmp r8, STATESIZE
	jne 9f
	cmp qword ptr [rip + getrandom + VVAR + GEN], 0
	je 9f
	test rsi, rsi
	jz 7f
	cmp byte ptr [rcx + INUSE], 0
	jne 9f
	mov byte ptr [rcx + INUSE], 1
	mov r8, rcx                     # r8: the state
	mov r9d, MAXLEN
	cmp rsi, r9
	cmovb r9, rsi                   # r9: the count returned
	mov r10, rdi                    # r10: the buffer
	pxor xmm8, xmm8                 # block counter and nonce: 0
2:	mov rax, qword ptr [rip + getrandom + VVAR + GEN]
	cmp qword ptr [r8 + SGEN], rax
	je 3f
	mov qword ptr [r8 + SGEN], rax  # a new generation: a new key
	push rdx
	lea rdi, [r8 + KEY]
	mov esi, 32
	xor edx, edx
	mov eax, SYS_getrandom
	syscall
	pop rdx
	cmp rax, 32
	jne 6f
	mov byte ptr [r8 + POS], 96     # the batch is of the old key: drop it
3:	mov rdi, r10                    # rdi: where output goes next
	mov rsi, r9                     # rsi: how much is still wanted
4:	movzx eax, byte ptr [r8 + POS]  # take from the batch, erasing it
	mov ecx, 96
	sub ecx, eax
	jbe 5f
	cmp rcx, rsi
	cmova rcx, rsi
	lea r11, [r8 + rax]
	add byte ptr [r8 + POS], cl
	sub rsi, rcx
10:	cmp ecx, 8
	jb 11f
	mov rax, qword ptr [r11]
	mov qword ptr [rdi], rax
	mov qword ptr [r11], 0
	add r11, 8
	add rdi, 8
	sub ecx, 8
	jmp 10b
11:	test ecx, ecx
	jz 5f
	mov al, byte ptr [r11]
	mov byte ptr [rdi], al
	mov byte ptr [r11], 0
	inc r11
	inc rdi
	dec ecx
	jmp 11b
5:	test rsi, rsi
	jnz 12f
	mov rax, qword ptr [rip + getrandom + VVAR + GEN]
	cmp qword ptr [r8 + SGEN], rax
	jne 13f
	mov byte ptr [r8 + INUSE], 0    # done
	mov rax, r9
	ret
13:	test edx, RETRIED               # reseeded meanwhile: start again, once
	jnz 6f
	or edx, RETRIED
	jmp 2b
12:	mov rax, rsi                    # whole blocks straight to the buffer,
	shr rax, 6
	jz 14f
	mov r11, rdi
	call blocks
	mov rdi, r11
	and esi, 63
14:	mov r11, r8                     # then a new batch and key over the old
	mov eax, 2
	call blocks
	mov byte ptr [r8 + POS], 0
	jmp 4b
6:	mov qword ptr [r8 + SGEN], 0    # no key: forget it, ask the monitor
	mov byte ptr [r8 + INUSE], 0
	mov rdi, r10
	mov rsi, r9
	and edx, 7
	jmp 9f
7:	xor eax, eax
	ret
8:	mov rax, -14                    # EFAULT
	ret
9:	mov eax, SYS_getrandom
	syscall
	ret

# blocks writes rax (> 0) ChaCha20 blocks to r11 (advancing it) under the
# key at r8 + KEY, with the 64-bit block counter in the low half of xmm8
# (advanced) and a zero nonce; then clears the registers that held key or
# output. It may overwrite the key: it reads it first.
blocks:
	movdqu xmm4, xmmword ptr [rip + sigma]
	movdqu xmm5, xmmword ptr [r8 + KEY]
	movdqu xmm6, xmmword ptr [r8 + KEY + 16]
	mov ecx, 1
	movq xmm9, rcx
1:	movdqa xmm0, xmm4
	movdqa xmm1, xmm5
	movdqa xmm2, xmm6
	movdqa xmm3, xmm8
	mov ecx, 10
2:	quarterround                    # columns
	pshufd xmm1, xmm1, 0x39
	pshufd xmm2, xmm2, 0x4e
	pshufd xmm3, xmm3, 0x93
	quarterround                    # diagonals
	pshufd xmm1, xmm1, 0x93
	pshufd xmm2, xmm2, 0x4e
	pshufd xmm3, xmm3, 0x39
	dec ecx
	jnz 2b
	paddd xmm0, xmm4
	paddd xmm1, xmm5
	paddd xmm2, xmm6
	paddd xmm3, xmm8
	movdqu xmmword ptr [r11], xmm0
	movdqu xmmword ptr [r11 + 16], xmm1
	movdqu xmmword ptr [r11 + 32], xmm2
	movdqu xmmword ptr [r11 + 48], xmm3
	paddq xmm8, xmm9
	add r11, 64
	dec rax
	jnz 1b
	pxor xmm0, xmm0
	pxor xmm1, xmm1
	pxor xmm2, xmm2
	pxor xmm3, xmm3
	pxor xmm5, xmm5
	pxor xmm6, xmm6
	pxor xmm7, xmm7
	ret

sigma:	.ascii "expand 32-byte k"
