# Source of the syscall trampoline (monitor/trampoline.go); trampoline_test.go
# reassembles it with GNU as and checks the bytes match. H must equal
# sigTableAddr, ZCUR zoneCursorAddr, and the thread-block offsets
# threadblock.go's. It runs in
# user mode on paravirtual KVM and at CPL 0 on hardware KVM (SYSCALL
# changes privilege there): the fast paths return with popfq/jmp from user
# mode and with sysretq from CPL 0. They may clobber only rax, rcx and r11,
# and reach the calling thread's block through the GS base. A pointer
# below LOW (the monitor's pages) is left to the monitor.
.intel_syntax noprefix
.text
.equ H, 0x203000
.equ F, H+0x208
.equ R, H+0x410
.equ M, H+0x618
.equ ZCUR, 0x203820
.equ ZEND, 0x203828
.equ FDS, 0x203830
.equ TID, 0x0
.equ MASK, 0x08
.equ PEND, 0x10
.equ ALTSP, 0x18
.equ ALTFL, 0x20
.equ ALTSZ, 0x28
.equ CPUS, 0x30
.equ CSW, 0x38
.equ TMP, 0x40
.equ LOW, 0x400000
.equ KEEP, -0x40101
.equ SS_DISABLE, 2
.equ MINSIGSTKSZ, 0x800
entry:
	cmp rax, 13
	je sigaction
	cmp rax, 14
	je sigprocmask
	cmp rax, 131
	je sigaltstack
	cmp rax, 186
	je gettid
	cmp rax, 204
	je affinity
	cmp rax, 9
	je mmap
	cmp rax, 28
	je madvise
	cmp rax, 72
	je fcntl
	jmp slow

# rt_sigaction(sig=rdi, act=rsi, oldact=rdx, sigsetsize=r10)
sigaction:
	cmp r10, 8
	jne slow_sigaction
	cmp rdi, 64
	ja slow_sigaction
	test rdi, rdi
	jz slow_sigaction
	lea rax, [rsi-1]
	cmp rax, LOW-1
	jb slow_sigaction
	lea rax, [rdx-1]
	cmp rax, LOW-1
	jb slow_sigaction
	test rsi, rsi
	jz 1f
	cmp rdi, 9
	je slow_sigaction
	cmp rdi, 19
	je slow_sigaction
	cmp rsi, rdx
	je slow_sigaction
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
	jz ok
	mov rax, [rsi+8]
	mov [rdi*8+F], rax
	mov rax, [rsi+16]
	mov [rdi*8+R], rax
	mov rax, [rsi+24]
	and rax, KEEP
	mov [rdi*8+M], rax
	mov rax, [rsi]
	mov [rdi*8+H], rax
	jmp ok

# rt_sigprocmask(how=rdi, set=rsi, oldset=rdx, sigsetsize=r10)
sigprocmask:
	cmp r10, 8
	jne slow_sigprocmask
	lea rax, [rsi-1]
	cmp rax, LOW-1
	jb slow_sigprocmask
	lea rax, [rdx-1]
	cmp rax, LOW-1
	jb slow_sigprocmask
	test rsi, rsi
	jz 4f
	cmp rdi, 2
	ja slow_sigprocmask
	mov rax, [rsi]
	cmp rdi, 1
	jb 1f
	je 2f
	jmp 3f
1:	or rax, gs:[MASK]
	jmp 3f
2:	not rax
	and rax, gs:[MASK]
3:	and rax, KEEP
	xchg gs:[MASK], rax
	test rdx, rdx
	jz ok
	mov [rdx], rax
	jmp ok
4:	test rdx, rdx
	jz ok
	mov rax, gs:[MASK]
	mov [rdx], rax
	jmp ok

# sigaltstack(ss=rdi, old_ss=rsi): one of the two, not both
sigaltstack:
	lea rax, [rdi-1]
	cmp rax, LOW-1
	jb slow_sigaltstack
	lea rax, [rsi-1]
	cmp rax, LOW-1
	jb slow_sigaltstack
	test rdi, rdi
	jz 3f
	test rsi, rsi
	jnz slow_sigaltstack
	test byte ptr gs:[ALTFL], SS_DISABLE
	jnz 1f
	mov rax, rsp
	sub rax, gs:[ALTSP]
	jbe 1f
	cmp rax, gs:[ALTSZ]
	jbe slow_sigaltstack
1:	mov rax, [rdi]
	mov rax, [rdi+16]
	mov eax, [rdi+8]
	cmp eax, SS_DISABLE
	je 2f
	test eax, eax
	jnz slow_sigaltstack
	mov rax, [rdi+16]
	cmp rax, MINSIGSTKSZ
	jb slow_sigaltstack
	mov gs:[ALTSZ], rax
	mov rax, [rdi]
	mov gs:[ALTSP], rax
	mov qword ptr gs:[ALTFL], 0
	jmp ok
2:	mov qword ptr gs:[ALTSP], 0
	mov qword ptr gs:[ALTSZ], 0
	mov qword ptr gs:[ALTFL], SS_DISABLE
	jmp ok
3:	test rsi, rsi
	jz ok
	mov rax, gs:[ALTSP]
	mov [rsi], rax
	mov rax, gs:[ALTSZ]
	mov [rsi+16], rax
	mov rax, gs:[ALTFL]
	mov [rsi+8], rax
	test al, SS_DISABLE
	jnz ok
	mov rax, rsp
	sub rax, gs:[ALTSP]
	jbe ok
	cmp rax, gs:[ALTSZ]
	ja ok
	mov qword ptr [rsi+8], 1
	jmp ok

gettid:
	mov eax, gs:[TID]
	jmp done

# sched_getaffinity(pid=rdi, len=rsi, mask=rdx) for the calling thread
affinity:
	test rdi, rdi
	jnz slow_affinity
	cmp rsi, 8
	jb slow_affinity
	test sil, 7
	jnz slow_affinity
	lea rax, [rdx-1]
	cmp rax, LOW-1
	jb slow_affinity
	mov rax, gs:[CPUS]
	mov [rdx], rax
	mov eax, 8
	jmp done

# mmap(addr=rdi, len=rsi, prot=rdx, flags=r10, fd=r8, off=r9): a
# PROT_NONE, private, anonymous reservation anywhere takes the next pages
# of the reservation zone; the monitor records them at its next change to
# the address space (guestmem.Memory.Claim).
mmap:
	test rdi, rdi
	jnz slow_mmap
	test rdx, rdx
	jnz slow_mmap
	cmp r10, 0x22
	jne slow_mmap
	test r9, r9
	jnz slow_mmap
	lea rax, [rsi-1]
	cmp rax, 0x7fffffff
	jae slow_mmap
	lea rax, [rsi+0xfff]
	and rax, -0x1000
	lock xadd [ZCUR], rax
	add rax, rsi
	cmp rax, [ZEND]
	ja slow_mmap
	sub rax, rsi
	jmp done

# madvise(addr=rdi, len=rsi, advice=rdx): advice that frees nothing is a
# hint the monitor ignores too.
madvise:
	cmp rdx, 4
	je slow_madvise
	cmp rdx, 8
	je slow_madvise
	cmp rdx, 9
	je slow_madvise
	jmp ok

# fcntl(fd=rdi, cmd=rsi): F_GETFD and F_GETFL of descriptors 0-2, from
# the words the monitor keeps valid (bit 63) while they hold (fdcache.go).
fcntl:
	cmp rdi, 3
	jae slow_fcntl
	cmp rsi, 1
	je 1f
	cmp rsi, 3
	jne slow_fcntl
	mov rax, [rdi*8+FDS]
	test rax, rax
	jns slow_fcntl
	mov eax, eax
	jmp done
1:	mov rax, [rdi*8+FDS]
	test rax, rax
	jns slow_fcntl
	jmp ok

ok:	xor eax, eax
# The result is in rax. A signal the thread does not block is pending:
# leave through deliver, so that the monitor delivers it now.
done:
	mov gs:[TMP], rax
	mov rax, gs:[MASK]
	not rax
	and rax, gs:[PEND]
	mov rax, gs:[TMP]
	jnz deliver
	mov gs:[CSW], cs
	test byte ptr gs:[CSW], 3
	jz 1f
	push r11
	popfq
	jmp rcx
1:	sysretq
# A call the fast paths leave to the monitor: rax holds its number again.
slow_sigaction:
	mov eax, 13
	jmp slow
slow_sigprocmask:
	mov eax, 14
	jmp slow
slow_sigaltstack:
	mov eax, 131
	jmp slow
slow_affinity:
	mov eax, 204
	jmp slow
slow_mmap:
	mov eax, 9
	jmp slow
slow_madvise:
	mov eax, 28
	jmp slow
slow_fcntl:
	mov eax, 72
	jmp slow
deliver:
	hlt
slow:
	hlt
