package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// capture runs fn with stdout redirected and returns what it printed.
func capture(t *testing.T, fn func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	err = fn()
	os.Stdout = old
	w.Close()
	b, _ := io.ReadAll(r)
	return string(b), err
}

func TestInitramfsFiles(t *testing.T) {
	dir := t.TempDir()
	kernel, initrd, key := filepath.Join(dir, "helper.bzImage"), filepath.Join(dir, "helper.cpio.gz"), filepath.Join(dir, "key")
	conf := filepath.Join(dir, "kjump.conf")
	os.WriteFile(conf, []byte("key_file = \""+key+"\"\n[helper]\nkernel = \""+kernel+"\"\ninitrd = \""+initrd+"\"\n"), 0o644)
	for _, f := range []string{kernel, initrd, key} {
		os.WriteFile(f, []byte("x"), 0o600)
	}
	out, err := capture(t, func() error { return runInitramfsFiles([]string{"--config", conf}) })
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join([]string{conf, kernel, initrd, key}, "\n") + "\n"; out != want {
		t.Fatalf("printed %q, want %q", out, want)
	}
	// An initramfs without the restore kernel could not resume: say so.
	os.Remove(initrd)
	_, err = capture(t, func() error { return runInitramfsFiles([]string{"--config", conf}) })
	if err == nil || !strings.Contains(err.Error(), initrd+" is missing") || !strings.Contains(err.Error(), "hibernate prepare") {
		t.Fatalf("missing initrd: %v", err)
	}
}
