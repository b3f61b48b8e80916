package bootonce

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// GRUB's environment block (grubenv): a file of fixed size, usually
// 1024 bytes, that starts with a signature, holds name=value lines and is
// padded with '#'. GRUB's own save_env rewrites the file's blocks in
// place, never reallocating them, because GRUB cannot replay a journal: a
// change that only reached ext4's journal is invisible to it. kjump edits
// the block the same way, in place, at the same size.

const envSignature = "# GRUB Environment Block\n"

// maxEnvBlock bounds what is read: grubenv is 1 KiB; anything far larger
// is not an environment block.
const maxEnvBlock = 64 << 10

// envVar is a variable, or a comment line (GRUB 2.06's "# WARNING: Do not
// edit this file ...") kept as it was.
type envVar struct{ name, value, comment string }

type envBlock struct {
	vars []envVar
	size int
}

// parseEnv reads an environment block. A backslash escapes the next
// character (GRUB writes "\\" and "\<newline>"); lines starting with '#'
// are padding.
func parseEnv(b []byte) (*envBlock, error) {
	if !bytes.HasPrefix(b, []byte(envSignature)) {
		return nil, fmt.Errorf("not a GRUB environment block (no %q signature)", strings.TrimSpace(envSignature))
	}
	e := &envBlock{size: len(b)}
	rest := b[len(envSignature):]
	for len(rest) > 0 {
		if rest[0] == '#' {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break // the padding
			}
			e.vars = append(e.vars, envVar{comment: string(rest[:i])})
			rest = rest[i+1:]
			continue
		}
		var line []byte
		i := 0
		for ; i < len(rest) && rest[i] != '\n'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
			}
			line = append(line, rest[i])
		}
		if i == len(rest) {
			return nil, fmt.Errorf("GRUB environment block: unterminated line %q", line)
		}
		rest = rest[i+1:]
		name, value, ok := strings.Cut(string(line), "=")
		if !ok || name == "" || name[0] == '#' {
			return nil, fmt.Errorf("GRUB environment block: line %q is not name=value", line)
		}
		e.vars = append(e.vars, envVar{name: name, value: value})
	}
	return e, nil
}

func (e *envBlock) get(name string) (string, bool) {
	for _, v := range e.vars {
		if v.comment == "" && v.name == name {
			return v.value, true
		}
	}
	return "", false
}

func (e *envBlock) set(name, value string) {
	for i := range e.vars {
		if e.vars[i].comment == "" && e.vars[i].name == name {
			e.vars[i].value = value
			return
		}
	}
	e.vars = append(e.vars, envVar{name: name, value: value})
}

func (e *envBlock) unset(name string) {
	for i := range e.vars {
		if e.vars[i].comment == "" && e.vars[i].name == name {
			e.vars = append(e.vars[:i], e.vars[i+1:]...)
			return
		}
	}
}

// bytes is the block at its original size, or an error if the variables
// no longer fit.
func (e *envBlock) bytes() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(envSignature)
	esc := strings.NewReplacer(`\`, `\\`, "\n", "\\\n")
	for _, v := range e.vars {
		if v.comment != "" {
			b.WriteString(v.comment + "\n")
			continue
		}
		fmt.Fprintf(&b, "%s=%s\n", v.name, esc.Replace(v.value))
	}
	if b.Len() > e.size {
		return nil, fmt.Errorf("GRUB environment block full (%d bytes of variables in a %d-byte block)", b.Len(), e.size)
	}
	b.Write(bytes.Repeat([]byte{'#'}, e.size-b.Len()))
	return b.Bytes(), nil
}

// editEnv reads the environment block at path from the disk (not from a
// page cache GRUB may have written behind this kernel's back, e.g. after
// a resume), lets edit change it, and writes it back in place when edit
// says it changed.
func editEnv(path string, edit func(*envBlock) bool) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Size() > maxEnvBlock {
		return fmt.Errorf("%s: not a GRUB environment block (%d bytes)", path, st.Size())
	}
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	e, err := parseEnv(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if !edit(e) {
		return nil
	}
	out, err := e.bytes()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if _, err := f.WriteAt(out, 0); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Sync()
}

// readEnv returns the variable name from the block at path.
func readEnv(path, name string) (value string, ok bool, err error) {
	err = editEnv(path, func(e *envBlock) bool {
		value, ok = e.get(name)
		return false
	})
	return value, ok, err
}
