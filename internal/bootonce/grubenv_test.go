package bootonce

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// grubenvFile is a block as grub-editenv creates it, with one variable.
func grubenvFile(t *testing.T, vars string) string {
	t.Helper()
	b := []byte(envSignature + vars)
	b = append(b, bytes.Repeat([]byte{'#'}, 1024-len(b))...)
	p := filepath.Join(t.TempDir(), "grubenv")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// Arming and disarming rewrite the block in place: same file, same size,
// other variables (Debian's recordfail) kept, escapes as GRUB writes them.
func TestEnvEditInPlace(t *testing.T) {
	p := grubenvFile(t, "recordfail=1\nodd=a\\\\b\\\nc\n")
	ino := inode(t, p)
	g := &GRUB{Dir: filepath.Dir(p)}
	if err := editEnv(g.env(), func(b *envBlock) bool { b.set("next_entry", ID); return true }); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if len(b) != 1024 || inode(t, p) != ino {
		t.Fatalf("block rewritten as %d bytes, inode %d (was %d): want in place", len(b), inode(t, p), ino)
	}
	want := envSignature + "recordfail=1\nodd=a\\\\b\\\nc\nnext_entry=" + ID + "\n#"
	if !strings.HasPrefix(string(b), want) {
		t.Fatalf("block = %q, want prefix %q", b[:80], want)
	}
	if v, ok, err := readEnv(p, "odd"); err != nil || !ok || v != "a\\b\nc" {
		t.Fatalf("odd = %q %v %v, want the unescaped value", v, ok, err)
	}
	cleared, err := g.Disarm()
	if err != nil || !cleared {
		t.Fatalf("Disarm = %v, %v", cleared, err)
	}
	if _, ok, _ := readEnv(p, "next_entry"); ok {
		t.Fatal("next_entry still set after Disarm")
	}
	if v, _, _ := readEnv(p, "recordfail"); v != "1" {
		t.Fatalf("recordfail = %q after Disarm, want it kept", v)
	}
	// Another program's one-shot entry is not kjump's to clear.
	editEnv(p, func(b *envBlock) bool { b.set("next_entry", "Advanced options>1"); return true })
	if cleared, err := g.Disarm(); err != nil || cleared {
		t.Fatalf("Disarm cleared another next_entry (%v, %v)", cleared, err)
	}
}

func TestEnvRefusals(t *testing.T) {
	for name, b := range map[string]string{
		"no signature": "saved_entry=0\n",
		"no equals":    envSignature + "garbage\n####",
		"unterminated": envSignature + "a=b",
	} {
		if _, err := parseEnv([]byte(b)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	e, err := parseEnv([]byte(envSignature + strings.Repeat("#", 40)))
	if err != nil {
		t.Fatal(err)
	}
	e.set("next_entry", strings.Repeat("x", 40))
	if _, err := e.bytes(); err == nil || !strings.Contains(err.Error(), "full") {
		t.Errorf("overfull block: %v, want an error saying it is full", err)
	}
	big := filepath.Join(t.TempDir(), "grubenv")
	os.WriteFile(big, bytes.Repeat([]byte{'#'}, maxEnvBlock+1), 0o644)
	if err := editEnv(big, func(*envBlock) bool { return true }); err == nil {
		t.Error("a 64 KiB+ file was taken for grubenv")
	}
}

func FuzzParseEnv(f *testing.F) {
	f.Add([]byte(envSignature + "a=b\n###"))
	f.Add([]byte(envSignature + "a=\\\\\\\nx\n#"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseEnv(b)
		if err != nil {
			return
		}
		out, err := e.bytes()
		if err != nil {
			return
		}
		again, err := parseEnv(out)
		if err != nil {
			t.Fatalf("reparse of %q: %v", out, err)
		}
		if len(again.vars) != len(e.vars) {
			t.Fatalf("round trip changed the variables: %q -> %q", e.vars, again.vars)
		}
		for i := range e.vars {
			if again.vars[i] != e.vars[i] {
				t.Fatalf("round trip changed %q to %q", e.vars[i], again.vars[i])
			}
		}
	})
}

// After a direct restore GRUB's header has left "next_entry=": the
// original's Disarm and setup --undo's Uninstall leave grubenv byte for
// byte as it was before kjump armed it, and remove the entry file.
func TestDisarmRestoresBlock(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "boot/grub")
	os.MkdirAll(dir, 0o755)
	before := append([]byte(envSignature+"saved_entry=0\n"), bytes.Repeat([]byte{'#'}, 1024-len(envSignature)-14)...)
	env := filepath.Join(dir, "grubenv")
	os.WriteFile(env, before, 0o644)
	g := &GRUB{Dir: dir}
	editEnv(env, func(b *envBlock) bool { b.set("next_entry", ""); return true }) // as GRUB's save_env leaves it
	if cleared, err := g.Disarm(); err != nil || cleared {
		t.Fatalf("Disarm after GRUB cleared it = %v, %v; want nothing reported", cleared, err)
	}
	if b, _ := os.ReadFile(env); !bytes.Equal(b, before) {
		t.Fatalf("grubenv = %q, want it as before", b)
	}
	editEnv(env, func(b *envBlock) bool { b.set("next_entry", ID); return true })
	os.WriteFile(filepath.Join(dir, entryFile), []byte("menuentry"), 0o644)
	did, err := Uninstall(root, true)
	if err != nil || len(did) != 2 {
		t.Fatalf("dry Uninstall = %q, %v", did, err)
	}
	if _, err := os.Stat(filepath.Join(dir, entryFile)); err != nil {
		t.Fatal("dry Uninstall removed the entry")
	}
	if did, err := Uninstall(root, false); err != nil || len(did) != 2 {
		t.Fatalf("Uninstall = %q, %v", did, err)
	}
	if b, _ := os.ReadFile(env); !bytes.Equal(b, before) {
		t.Fatalf("grubenv after Uninstall = %q, want it as before", b)
	}
	if _, err := os.Stat(filepath.Join(dir, entryFile)); err == nil {
		t.Fatal("Uninstall left the entry")
	}
}
