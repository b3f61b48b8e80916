// Package asm assembles the purgatory source with GNU binutils and extracts
// flat section bytes and symbol offsets. It runs at go generate time and in
// the test that checks the committed bytes, never at run time.
package asm

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Symbol is a named (non-dot) symbol and its offset from the start of its section.
type Symbol struct {
	Name   string
	Offset uint64
}

// Blob is one section assembled to flat bytes.
type Blob struct {
	Section string
	Code    []byte
	Symbols []Symbol // sorted by name
}

// Assemble runs `as` on src and returns the named sections in order.
func Assemble(src string, sections []string) ([]Blob, error) {
	for _, tool := range []string{"as", "objcopy", "objdump"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s not found: install binutils (apt-get install binutils)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "kjump-asm")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	obj := filepath.Join(dir, "p.o")
	if err := run("as", "--64", "-o", obj, src); err != nil {
		return nil, err
	}
	syms, err := symbols(obj)
	if err != nil {
		return nil, err
	}
	var blobs []Blob
	for _, sec := range sections {
		bin := filepath.Join(dir, strings.TrimPrefix(sec, ".")+".bin")
		if err := run("objcopy", "-O", "binary", "--only-section="+sec, obj, bin); err != nil {
			return nil, err
		}
		code, err := os.ReadFile(bin)
		if err != nil {
			return nil, err
		}
		if len(code) == 0 {
			return nil, fmt.Errorf("section %s of %s is empty", sec, src)
		}
		b := Blob{Section: sec, Code: code, Symbols: syms[sec]}
		sort.Slice(b.Symbols, func(i, j int) bool { return b.Symbols[i].Name < b.Symbols[j].Name })
		blobs = append(blobs, b)
	}
	return blobs, nil
}

func run(name string, args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return nil
}

// symbols parses `objdump -t`: "VALUE FLAGS... SECTION SIZE NAME".
func symbols(obj string) (map[string][]Symbol, error) {
	out, err := exec.Command("objdump", "-t", obj).Output()
	if err != nil {
		return nil, fmt.Errorf("objdump -t %s: %v", obj, err)
	}
	m := map[string][]Symbol{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || (f[1] != "g" && f[1] != "l") || strings.HasPrefix(f[len(f)-1], ".") {
			continue
		}
		v, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			continue
		}
		sec := f[len(f)-3]
		m[sec] = append(m[sec], Symbol{Name: f[len(f)-1], Offset: v})
	}
	return m, nil
}
