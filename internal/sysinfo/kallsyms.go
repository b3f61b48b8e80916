package sysinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/kjump/kjump/internal/jump"
)

// Symbols holds the addresses of selected kernel symbols from /proc/kallsyms.
type Symbols map[string]uint64

// ParseKallsyms collects the wanted symbols. Zero addresses mean
// kptr_restrict hides them from this reader: that is an error, since any
// plan built on them would jump to nowhere.
func ParseKallsyms(r io.Reader, want ...string) (Symbols, error) {
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w] = true
	}
	syms := Symbols{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || !wanted[f[2]] {
			continue
		}
		if _, dup := syms[f[2]]; dup {
			continue
		}
		v, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("/proc/kallsyms: bad address in %q", sc.Text())
		}
		if v == 0 {
			return nil, fmt.Errorf("/proc/kallsyms hides addresses: run as root with kernel.kptr_restrict < 2")
		}
		syms[f[2]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading /proc/kallsyms: %w", err)
	}
	return syms, nil
}

// ReadKallsyms parses the running kernel's /proc/kallsyms.
func ReadKallsyms(want ...string) (Symbols, error) {
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseKallsyms(f, want...)
}

// Symbols that tell the two relocate_kernel generations apart: 6.14+
// reworked it (entry pushed for the callee, a kexec GDT/IDT in the control
// page, GDT restored on return).
var reworkedRelocateSymbols = []string{"__relocate_kernel_start", "kexec_pa_swap_page", "kexec_debug_exc_vectors"}

// KernelSymbolsWanted lists what JumpConvention and SavedContextAddr need.
var KernelSymbolsWanted = append([]string{"_text", "saved_context"}, reworkedRelocateSymbols...)

// JumpConvention tells which relocate_kernel the symbols come from.
func (s Symbols) JumpConvention() jump.Convention {
	for _, n := range reworkedRelocateSymbols {
		if _, ok := s[n]; ok {
			return jump.ConventionReworked
		}
	}
	return jump.ConventionClassic
}

// SavedContextAddr returns the physical address of the kernel's
// saved_context, whose gdt_desc the jump-back stub loads. The kernel image
// is physically contiguous from "Kernel code" (= _text) in /proc/iomem.
func (s Symbols) SavedContextAddr(iomem []Resource) (uint64, error) {
	text, ok1 := s["_text"]
	sc, ok2 := s["saved_context"]
	if !ok1 || !ok2 {
		return 0, fmt.Errorf("saved_context is not in /proc/kallsyms: the kernel needs CONFIG_KALLSYMS_ALL=y for kjump to restore its GDT on the way back (kernels before 6.13)")
	}
	code, ok := Find(iomem, "Kernel code")
	if !ok {
		return 0, fmt.Errorf("no \"Kernel code\" resource in /proc/iomem")
	}
	if sc < text {
		return 0, fmt.Errorf("saved_context %#x lies below _text %#x", sc, text)
	}
	return code.Start + (sc - text), nil
}
