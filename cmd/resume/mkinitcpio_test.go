package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/status"
	"github.com/kjump/kjump/internal/storage"
)

// mkinitcpio is Arch Linux's and not packaged by Debian, so the hooks in
// initramfs/mkinitcpio are run here the way mkinitcpio runs them, with
// its build functions reimplemented after its 'functions' file: add_file
// (install -Dm MODE into BUILDROOT), add_runscript (the hooks/ script of
// the install script's name, as /hooks/NAME), add_systemd_unit and
// add_symlink, warning. Then the busybox init's part: /hooks/kjump
// sourced by busybox ash in a chroot of the built tree, run_hook called,
// with the real resume binary.
const mkinitcpioHarness = `set -eu
BUILDROOT=$1 REPO=$2 HOOK=$3
msg() { :; }
warning() { printf 'WARNING: '; printf "$@"; echo; }
error() { printf 'ERROR: '; printf "$@"; echo; return 1; }
add_file() {
	local src=$1 dest=${2:-$1} mode=${3:-}
	[ -f "$src" ] || { error "file not found: %s" "$src"; return 1; }
	install -Dm"${mode:-$(stat -c %a "$src")}" "$src" "$BUILDROOT$dest"
}
add_runscript() {
	local name=${BASH_SOURCE[1]##*/}
	add_file "$REPO/initramfs/mkinitcpio/hooks/$name" "/hooks/$name" 755
	grep -q '^run_hook()' "$BUILDROOT/hooks/$name" && echo "$name" >>"$BUILDROOT/hooks.list"
}
add_systemd_unit() { add_file "$REPO/systemd/$1" "/usr/lib/systemd/system/$1" 644; }
add_symlink() { mkdir -p "$BUILDROOT$(dirname "$1")"; ln -sfn "$2" "$BUILDROOT$1"; }
export KJUMP_INSTALL_DIR=$REPO/initramfs/mkinitcpio/install
. "$REPO/initramfs/mkinitcpio/install/$HOOK"
build
`

// The busybox init's part: source each runtime hook and call run_hook,
// with msg and err as its init_functions define them.
const mkinitcpioInit = `msg() { [ "${quiet:-}" = y ] || echo "$@"; }
err() { echo "ERROR: $*"; }
for h in $(cat /hooks.list); do . /hooks/$h; run_hook; done
echo "init: boot goes on"
`

func TestMkinitcpioHooks(t *testing.T) {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("busybox (static) is needed for the initramfs side: apt-get install busybox-static")
	}
	repo, _ := filepath.Abs("../..")
	bin := filepath.Join(t.TempDir(), "resume")
	gobuild := exec.Command("go", "build", "-o", bin, ".")
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as packaged
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	files := t.TempDir()
	kernel, initrd, key := filepath.Join(files, "helper.bzImage"), filepath.Join(files, "helper.cpio.gz"), filepath.Join(files, "key")
	for _, f := range []string{kernel, initrd, key} {
		os.WriteFile(f, bytes.Repeat([]byte("k"), 32), 0o644)
	}
	os.Chmod(key, 0o600)
	conf := filepath.Join(files, "kjump.conf")
	os.WriteFile(conf, []byte("targets = [\"/images\"]\nkey_file = \""+key+"\"\n[helper]\nkernel = \""+kernel+"\"\ninitrd = \""+initrd+"\"\n"), 0o644)

	build := func(hook string) (string, string) {
		root := t.TempDir()
		cmd := exec.Command("bash", "-c", mkinitcpioHarness, "harness", root, repo, hook)
		cmd.Env = append(os.Environ(), "KJUMP_RESUME="+bin, "KJUMP_HIBERNATE=/nonexistent", "KJUMP_CONFIG="+conf)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s build: %v\n%s", hook, err, out)
		}
		return root, string(out)
	}
	root, out := build("kjump")
	if strings.Contains(out, "WARNING") {
		t.Fatalf("build warned:\n%s", out)
	}
	for path, mode := range map[string]os.FileMode{"usr/bin/kjump-resume": 0o755, "hooks/kjump": 0o755,
		strings.TrimPrefix(conf, "/"): 0o600, strings.TrimPrefix(kernel, "/"): 0o600, strings.TrimPrefix(initrd, "/"): 0o600, strings.TrimPrefix(key, "/"): 0o600} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s in the initramfs: %v %v, want mode %v", path, fi, err, mode)
		}
	}

	// The init side, in a chroot of the tree with busybox as its shell and
	// the configuration where resume reads it at boot.
	for _, l := range []string{"bin/busybox", "bin/sh", "bin/cat", "bin/echo"} {
		os.MkdirAll(filepath.Join(root, "bin"), 0o755)
		if l == "bin/busybox" {
			b, _ := os.ReadFile(busybox)
			os.WriteFile(filepath.Join(root, l), b, 0o755)
		} else {
			os.Symlink("busybox", filepath.Join(root, l))
		}
	}
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	// (No key_file here: the image below is plain.)
	os.WriteFile(filepath.Join(root, "etc/kjump.conf"), []byte("targets = [\"/images\"]\n"), 0o600)
	os.MkdirAll(filepath.Join(root, "images"), 0o700)
	os.WriteFile(filepath.Join(root, "init.sh"), []byte(mkinitcpioInit), 0o755)
	boot := func(vars string) string {
		out, _ := exec.Command("chroot", root, "/bin/sh", "-c", vars+" . /init.sh").CombinedOutput()
		return string(out)
	}
	// No image: resume says so and the boot goes on.
	out = boot("")
	if !strings.Contains(out, ":: kjump: resuming from a hibernation image, if there is one") || !strings.Contains(out, "resume: nothing to resume; booting normally") ||
		strings.Contains(out, "ERROR") || !strings.HasSuffix(out, "init: boot goes on\n") {
		t.Fatalf("no image:\n%s", out)
	}
	if o, _ := status.Load(filepath.Join(root, "run/kjump"), status.Resume); o == nil || o.Result != status.None {
		t.Fatalf("no resume record in the initramfs's /run: %+v", o)
	}
	// A damaged image: refused, reported, the boot goes on.
	mem := bytes.Repeat([]byte("mkinitcpio "), 20000)
	mem = mem[:len(mem)/4096*4096]
	tg, _ := storage.Open(filepath.Join(root, "images"))
	if _, err := image.WriteTarget(context.Background(), tg, image.RangeSource(bytes.NewReader(mem), []image.Range{{End: uint64(len(mem))}}), image.Metadata{}); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(root, "images", storage.DefaultName)
	d, _ := os.ReadFile(img)
	d[len(d)/2] ^= 0xff
	os.WriteFile(img, d, 0o600)
	out = boot("")
	if !strings.Contains(out, "ERROR: kjump: resume failed (exit status 1); booting normally") || !strings.HasSuffix(out, "init: boot goes on\n") {
		t.Fatalf("damaged image:\n%s", out)
	}
	// noresume on the command line (the init sets a bare word to y).
	if out = boot("noresume=y;"); strings.Contains(out, "kjump") || !strings.Contains(out, "init: boot goes on") {
		t.Fatalf("noresume:\n%s", out)
	}

	// sd-kjump: the same files, and the unit wanted by initrd.target
	// instead of a runtime script.
	root, out = build("sd-kjump")
	if strings.Contains(out, "WARNING") {
		t.Fatalf("sd-kjump build warned:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(root, "hooks")); err == nil {
		t.Error("sd-kjump added a runtime script the systemd init would not run")
	}
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/initrd.target.wants/kjump-initrd-resume.service"))
	if err != nil || !strings.Contains(string(unit), "ExecStart=-/usr/bin/kjump-resume") || !strings.Contains(string(unit), "Before=sysroot.mount") {
		t.Fatalf("unit: %v\n%s", err, unit)
	}
	if fi, err := os.Stat(filepath.Join(root, "usr/bin/kjump-resume")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("sd-kjump: no kjump-resume: %v", err)
	}
	// Without a helper kernel the build warns and adds nothing, rather
	// than failing every kernel update.
	os.Remove(kernel)
	root, out = build("kjump")
	if !strings.Contains(out, "WARNING: kjump: the initramfs cannot resume") {
		t.Fatalf("missing helper kernel:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(root, "hooks/kjump")); err == nil {
		t.Fatal("runtime hook added although resume could not work")
	}
}
