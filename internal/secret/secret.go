// Package secret reads the key that encrypts kjump images: a root-only key
// file, a root-only passphrase file, or a passphrase typed on the terminal.
// What it returns goes to image.NewKey or image.WithSecret and is never
// printed.
package secret

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/term"

	"github.com/kjump/kjump/internal/image"
)

// Flags are the key options every command that writes or reads images takes.
type Flags struct {
	KeyFile        string
	PassphraseFile string
	Passphrase     bool
}

// Register adds --key-file, --passphrase-file and --passphrase to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.KeyFile, "key-file", "", "encrypt/decrypt with this root-only key `file` (at least 32 bytes; 'head -c 32 /dev/urandom')")
	fs.StringVar(&f.PassphraseFile, "passphrase-file", "", "encrypt/decrypt with the passphrase in this root-only `file` (scripts)")
	fs.BoolVar(&f.Passphrase, "passphrase", false, "ask for a passphrase on the terminal")
}

// Given reports whether any key option was set.
func (f *Flags) Given() bool { return f.KeyFile != "" || f.PassphraseFile != "" || f.Passphrase }

// Secret reads the secret the flags name; nil when none was given. confirm
// asks for a typed passphrase twice (when writing: a typo would make the
// image unreadable).
func (f *Flags) Secret(confirm bool) (*image.Secret, error) {
	n := 0
	for _, set := range []bool{f.KeyFile != "", f.PassphraseFile != "", f.Passphrase} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return nil, nil
	case n > 1:
		return nil, errors.New("give only one of --key-file, --passphrase-file and --passphrase")
	}
	var (
		s   image.Secret
		err error
	)
	switch {
	case f.KeyFile != "":
		s, err = KeyFile(f.KeyFile)
	case f.PassphraseFile != "":
		s, err = PassphraseFile(f.PassphraseFile)
	default:
		s, err = Prompt(os.Stdin, confirm)
	}
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// KeyFile reads a key file after checking that only root can read it.
func KeyFile(path string) (image.Secret, error) {
	b, err := readPrivate(path, "key file")
	if err != nil {
		return image.Secret{}, err
	}
	if len(b) < image.MinKeyFileLen {
		clear(b)
		return image.Secret{}, fmt.Errorf("key file %s holds %d bytes, fewer than the %d needed: make one with 'head -c 32 /dev/urandom > %s; chmod 600 %s'", path, len(b), image.MinKeyFileLen, path, path)
	}
	return image.KeyFileSecret(b), nil
}

// PassphraseFile reads a passphrase (one trailing newline dropped) from a
// file only root can read.
func PassphraseFile(path string) (image.Secret, error) {
	b, err := readPrivate(path, "passphrase file")
	if err != nil {
		return image.Secret{}, err
	}
	b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	if len(b) == 0 {
		return image.Secret{}, fmt.Errorf("passphrase file %s is empty", path)
	}
	return image.PassphraseSecret(b), nil
}

// readPrivate refuses a file another user could read or replace: owned by
// root, no group or other permission bits.
func readPrivate(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file", what, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
		return nil, fmt.Errorf("%s %s is owned by uid %d, not root: anyone who owns it can read or replace the key; run 'chown root:root %s'", what, path, st.Uid, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%s %s is accessible to group or others (mode %04o): run 'chmod 600 %s'", what, path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, image.MaxKeyFileLen+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if len(b) > image.MaxKeyFileLen {
		clear(b)
		return nil, fmt.Errorf("%s %s is longer than %d bytes: is it the right file?", what, path, image.MaxKeyFileLen)
	}
	return b, nil
}

// Prompt asks for a passphrase on the terminal in without echo.
func Prompt(in *os.File, confirm bool) (image.Secret, error) {
	fd := int(in.Fd())
	if !term.IsTerminal(fd) {
		return image.Secret{}, errors.New("--passphrase asks on a terminal, and stdin is not one: scripts give --passphrase-file FILE")
	}
	fmt.Fprint(os.Stderr, "kjump image passphrase: ")
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return image.Secret{}, fmt.Errorf("reading the passphrase: %w", err)
	}
	if len(p) == 0 {
		return image.Secret{}, errors.New("empty passphrase")
	}
	if confirm {
		fmt.Fprint(os.Stderr, "again: ")
		p2, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return image.Secret{}, fmt.Errorf("reading the passphrase: %w", err)
		}
		same := bytes.Equal(p, p2)
		clear(p2)
		if !same {
			clear(p)
			return image.Secret{}, errors.New("the passphrases differ; nothing was written")
		}
	}
	return image.PassphraseSecret(p), nil
}
