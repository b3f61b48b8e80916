/*
 * kjump purgatory and jump-back stub (x86-64, GNU as).
 *
 * Both blobs are position independent; the Go loader copies them into a kexec
 * segment and patches the parameter slots (labels p_* / j_*), whose offsets
 * gen.go extracts with objdump. Labels stay local: a global would be
 * assembled as a relocation, which a flat binary cannot carry. Assemble-check: go test ./internal/jump/purgatory.
 *
 * PURGATORY - entered by the ORIGINAL kernel's relocate_kernel through
 * `call *%rdx` (KEXEC_PRESERVE_CONTEXT): 64-bit mode, paging on with the
 * kexec identity map (original RAM + segments only), interrupts off, GDT and
 * IDT invalid (6.1) or a kexec GDT in the control page (6.14+). On every
 * kernel 0(%rsp) is the original's re-entry point: the jump-back entry.
 * It records that entry in the handoff page, switches to its own identity
 * map (low memory + reserved region only), backs up the original's low
 * memory (the helper reuses it for its SMP trampoline), then enters the
 * helper kernel through the 64-bit boot protocol (Documentation/x86/boot.rst):
 * flat __BOOT_CS=0x10/__BOOT_DS=0x18, %rsi = boot_params.
 */
	.code64

	.section .purgatory, "awx"
purgatory_start:
	jmp	p_entry
	.balign	8
p_magic:	.ascii	"KJPURG01"
p_handoff:	.quad	0	/* phys: handoff page; entry stored at +HANDOFF_ENTRY */
p_backup_src:	.quad	0	/* phys: original low memory to save */
p_backup_dst:	.quad	0	/* phys: backup area in the reserved region */
p_backup_len:	.quad	0	/* bytes, multiple of 8 */
p_pml4:		.quad	0	/* phys: our 4-level identity map */
p_pml5:		.quad	0	/* phys: same map under a PML5 (CR4.LA57 kernels) */
p_boot_params:	.quad	0	/* phys: struct boot_params for the helper */
p_kernel_entry:	.quad	0	/* phys: helper kernel load address + 0x200 */

	.set	HANDOFF_ENTRY, 0x10	/* must match handoff.go */
	.set	CR4_LA57, 0x1000

p_entry:
	movq	0(%rsp), %rbx		/* jump-back entry, before leaving this stack */

	/* Own page tables: the kexec map may not cover the handoff/backup pages. */
	movq	%cr4, %rax
	testl	$CR4_LA57, %eax
	jz	1f
	movq	p_pml5(%rip), %rax
	jmp	2f
1:	movq	p_pml4(%rip), %rax
2:	movq	%rax, %cr3

	leaq	p_stack_top(%rip), %rsp

	/* Own GDT: fill in its runtime base, load it, reload every segment. */
	leaq	p_gdt(%rip), %rax
	movq	%rax, p_gdt_desc+2(%rip)
	lgdt	p_gdt_desc(%rip)
	leaq	3f(%rip), %rax
	pushq	$0x10
	pushq	%rax
	lretq
3:	movl	$0x18, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs

	movq	p_handoff(%rip), %rdi
	movq	%rbx, HANDOFF_ENTRY(%rdi)

	cld
	movq	p_backup_src(%rip), %rsi
	movq	p_backup_dst(%rip), %rdi
	movq	p_backup_len(%rip), %rcx
	shrq	$3, %rcx
	rep movsq

	movq	p_boot_params(%rip), %rsi
	movq	p_kernel_entry(%rip), %rax
	xorl	%ebx, %ebx
	xorl	%ebp, %ebp
	xorl	%edi, %edi
	jmp	*%rax

	.balign	16
p_gdt:
	.quad	0			/* null */
	.quad	0			/* unused */
	.quad	0x00af9a000000ffff	/* 0x10: 64-bit code, flat */
	.quad	0x00cf92000000ffff	/* 0x18: data, flat 4 GiB */
p_gdt_end:
	.balign	8
	.word	0
p_gdt_desc:
	.word	p_gdt_end - p_gdt - 1
	.quad	0
	.balign	16
	.skip	1024
p_stack_top:
purgatory_end:

/*
 * JUMP-BACK STUB - the entry of the jump-back image a helper or restore kernel
 * loads to return into the original kernel. Its relocate_kernel calls it with
 * its own identity map and a null GDT. Kernels before 6.13 return into
 * restore_processor_state() without reloading a GDT and triple-fault on the
 * first segment load, so load the original's saved GDT descriptor (a virtual
 * address, valid once the original restores its CR3) and jump - not call - to
 * the original's re-entry point, leaving the stack exactly as the peer's
 * relocate_kernel built it. Harmless on kernels that reload the GDT.
 */
	.section .jumpback, "awx"
jumpback_start:
	cmpw	$0, j_gdt_desc(%rip)
	je	1f
	lgdt	j_gdt_desc(%rip)
1:	jmpq	*j_entry(%rip)
	.balign	8
j_entry:	.quad	0	/* phys: original's re-entry point */
	.word	0
j_gdt_desc:	.word	0	/* limit; 0 = do not load */
		.quad	0	/* base (original's virtual address) */
jumpback_end:
