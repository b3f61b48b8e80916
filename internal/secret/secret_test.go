package secret

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFilePermissions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to own the test files as root")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	os.WriteFile(p, []byte(strings.Repeat("k", 32)), 0o600)
	if _, err := KeyFile(p); err != nil {
		t.Fatalf("0600 root file: %v", err)
	}
	os.Chmod(p, 0o640)
	if _, err := KeyFile(p); err == nil || !strings.Contains(err.Error(), "chmod 600 "+p) {
		t.Fatalf("0640: %v", err)
	}
	os.Chmod(p, 0o600)
	os.Chown(p, 1000, 1000)
	if _, err := KeyFile(p); err == nil || !strings.Contains(err.Error(), "chown root:root "+p) {
		t.Fatalf("not root's: %v", err)
	}
	os.Chown(p, 0, 0)
	os.WriteFile(p, []byte("short"), 0o600)
	if _, err := KeyFile(p); err == nil || !strings.Contains(err.Error(), "head -c 32 /dev/urandom") {
		t.Fatalf("short: %v", err)
	}
	os.WriteFile(p, []byte("pass phrase\n"), 0o600)
	s, err := PassphraseFile(p)
	if err != nil || s.Source().String() != "passphrase" {
		t.Fatalf("passphrase file: %v", err)
	}
	f := Flags{KeyFile: p, PassphraseFile: p}
	if _, err := f.Secret(false); err == nil {
		t.Fatal("two key options accepted")
	}
	if _, err := Prompt(os.Stdin, false); err == nil || !strings.Contains(err.Error(), "--passphrase-file") {
		// go test's stdin is not a terminal
		t.Fatalf("prompt without a terminal: %v", err)
	}
}
