package sysinfo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Resource is one line of /proc/iomem: a named physical range with its
// nesting depth (children are indented by two spaces per level).
type Resource struct {
	Range
	Name  string
	Depth int
}

// ParseIOMem parses /proc/iomem. The file prints inclusive end addresses;
// Resource ranges are half-open. Unprivileged readers see all-zero
// addresses, which is reported as an error because nothing can be planned
// from them.
func ParseIOMem(r io.Reader) ([]Resource, error) {
	var out []Resource
	sc := bufio.NewScanner(r)
	line := 0
	allZero := true
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		depth := (len(text) - len(strings.TrimLeft(text, " "))) / 2
		span, name, ok := strings.Cut(strings.TrimSpace(text), " : ")
		if !ok {
			return nil, fmt.Errorf("/proc/iomem line %d %q: want \"START-END : NAME\"", line, text)
		}
		lo, hi, ok := strings.Cut(span, "-")
		if !ok {
			return nil, fmt.Errorf("/proc/iomem line %d %q: range %q has no '-'", line, text, span)
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end < start {
			return nil, fmt.Errorf("/proc/iomem line %d %q: bad hex range %q", line, text, span)
		}
		if start != 0 || end != 0 {
			allZero = false
		}
		out = append(out, Resource{Range: Range{Start: start, End: end + 1}, Name: name, Depth: depth})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading /proc/iomem: %w", err)
	}
	if len(out) > 0 && allZero {
		return nil, fmt.Errorf("/proc/iomem shows only zero addresses: run as root (CAP_SYS_ADMIN) to see physical addresses")
	}
	return out, nil
}

// ReadIOMem parses the running kernel's /proc/iomem.
func ReadIOMem() ([]Resource, error) {
	f, err := os.Open("/proc/iomem")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseIOMem(f)
}

// SystemRAM returns the top-level "System RAM" ranges: the memory the kernel
// manages, which is exactly what a hibernation image must hold.
func SystemRAM(res []Resource) Ranges {
	var rs Ranges
	for _, r := range res {
		if r.Depth == 0 && r.Name == "System RAM" {
			rs = append(rs, r.Range)
		}
	}
	return rs.Normalize()
}

// Find returns the first resource with the given name at any depth.
func Find(res []Resource, name string) (Resource, bool) {
	for _, r := range res {
		if r.Name == name {
			return r, true
		}
	}
	return Resource{}, false
}
