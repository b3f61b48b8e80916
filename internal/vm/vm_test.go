package vm

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestInitramfsHoldsBusyboxInitAndFiles(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "i.gz")
	host := filepath.Join(dir, "tool")
	os.WriteFile(host, []byte("#!/bin/sh\n"), 0o644)
	err := Initramfs{Init: "echo hi\n", Files: map[string]File{
		"bin/tool":     {Host: host},
		"etc/conf":     {Data: []byte("x=1"), Mode: 0o600},
		"bin/poweroff": {Data: []byte("mine")}, // overrides the applet link
	}}.Write(img)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", "zcat "+img+" | cpio -tv --quiet").Output()
	if err != nil {
		t.Fatal("cpio -t:", err)
	}
	list := string(out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^-rwxr-xr-x .* init$`),
		regexp.MustCompile(`(?m)^-rwxr-xr-x .* bin/busybox$`),
		regexp.MustCompile(`(?m)^lrwxrwxrwx .* bin/sh -> /bin/busybox$`),
		regexp.MustCompile(`(?m)^lrwxrwxrwx .* sbin/switch_root -> /bin/busybox$`),
		regexp.MustCompile(`(?m)^crw------- .* 5, +1 .* dev/console$`),
		regexp.MustCompile(`(?m)^-rwxr-xr-x .* bin/tool$`),
		regexp.MustCompile(`(?m)^-rw------- .* etc/conf$`),
		regexp.MustCompile(`(?m)^-rwxr-xr-x .* bin/poweroff$`),
	} {
		if !want.MatchString(list) {
			t.Errorf("no entry matching %v in:\n%.2000s", want, list)
		}
	}
	init, err := exec.Command("sh", "-c", "zcat "+img+" | cpio -i --quiet --to-stdout init").Output()
	if err != nil || !strings.HasPrefix(string(init), "#!/bin/sh\necho hi") {
		t.Errorf("init = %q, %v", init, err)
	}
}

func TestMakeExt4(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "a"), 0o755)
	os.WriteFile(filepath.Join(src, "a", "f"), []byte("content\n"), 0o644)
	img := filepath.Join(dir, "fs.img")
	if err := MakeExt4(img, 16, "lbl", src); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(img); st.Size() != 16<<20 {
		t.Errorf("image size %d, want 16 MiB", st.Size())
	}
	out, err := exec.Command("debugfs", "-R", "cat /a/f", img).Output()
	if err != nil || string(out) != "content\n" {
		t.Errorf("debugfs cat = %q, %v", out, err)
	}
	out, err = exec.Command("dumpe2fs", "-h", img).Output()
	if err != nil || !regexp.MustCompile(`(?m)^Filesystem volume name:\s+lbl$`).Match(out) {
		t.Errorf("dumpe2fs: label not lbl (%v)", err)
	}
}

func TestConsoleExpectIsOrderedAndReportsTail(t *testing.T) {
	r, w := io.Pipe()
	log := filepath.Join(t.TempDir(), "console.log")
	f, _ := os.Create(log)
	defer f.Close()
	c := newConsole(f, log)
	exited := make(chan struct{})
	go func() { c.read(r, func(string) {}); close(exited) }()

	io.WriteString(w, "boot\r\nA 1\nB 2\nA 3\npartial")
	sm, err := c.expect(regexp.MustCompile(`B (\d)`), "B", time.Second, exited)
	if err != nil || sm[1] != "2" {
		t.Fatalf("B: %v %v", sm, err)
	}
	// Lines before the last match are consumed: the next A is "A 3".
	sm, err = c.expect(regexp.MustCompile(`A (\d)`), "A", time.Second, exited)
	if err != nil || sm[1] != "3" {
		t.Fatalf("A after B: %v %v", sm, err)
	}
	_, err = c.expect(regexp.MustCompile(`never`), "never", 50*time.Millisecond, exited)
	if err == nil || !strings.Contains(err.Error(), `"never" did not appear within 50ms`) || !strings.Contains(err.Error(), "A 3") {
		t.Fatalf("timeout error: %v", err)
	}
	w.Close() // QEMU exits: the partial last line still counts
	if _, err := c.expect(regexp.MustCompile(`^partial$`), "partial", time.Second, exited); err != nil {
		t.Fatal(err)
	}
	if _, err := c.expect(regexp.MustCompile(`more`), "more", time.Minute, exited); err == nil || !strings.Contains(err.Error(), "QEMU exited before") {
		t.Fatalf("after exit: %v", err)
	}
	if got := c.text(); got != "boot\nA 1\nB 2\nA 3\npartial\n" {
		t.Errorf("text %q", got)
	}
	b, _ := os.ReadFile(log)
	if !regexp.MustCompile(`(?m)^\[ +\d+\.\d{3}\] B 2$`).Match(b) {
		t.Errorf("log lacks timestamped lines:\n%s", b)
	}
}

// The CI failure that motivated the splicer: printk cut into resume's refusal.
func TestConsoleSplicesKernelMessagesOutOfUserLines(t *testing.T) {
	c := newConsole(io.Discard, "console.log")
	exited := make(chan struct{})
	out := "resume: image 7176 is not resumable: wrong key or pass[    1.570070] resume (78) used greatest stack depth: 13592 bytes left\r\n" +
		"[    1.580000] another kernel line\n" +
		"phrase\nnext\ncut[   12.000001] k\n"
	go func() { c.read(strings.NewReader(out), func(string) {}); close(exited) }()
	<-exited
	want := "[    1.570070] resume (78) used greatest stack depth: 13592 bytes left\n" +
		"[    1.580000] another kernel line\n" +
		"resume: image 7176 is not resumable: wrong key or passphrase\n" +
		"next\n[   12.000001] k\ncut\n"
	if got := c.text(); got != want {
		t.Errorf("spliced console:\n%s\nwant:\n%s", got, want)
	}
}

func TestKernelOverride(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bzImage")
	os.WriteFile(p, nil, 0o644)
	t.Setenv("KJUMP_KERNEL", p)
	if got, err := Kernel(); err != nil || got != p {
		t.Errorf("Kernel() = %q, %v; want %q", got, err, p)
	}
	t.Setenv("KJUMP_KERNEL", p+".missing")
	if _, err := Kernel(); err == nil {
		t.Error("missing KJUMP_KERNEL accepted")
	}
}

func TestQEMUArgs(t *testing.T) {
	m := &Machine{sockDir: "/s"}
	a, err := m.args(Config{Kernel: "k", Append: "quiet panic=5", MemMiB: 256, SMP: 2,
		Disks: []string{"/d.img", "/slow.img"}, WriteBPS: map[string]int64{"/slow.img": 8 << 20},
		Net: &Net{Listen: true, Port: 4444}, Monitor: true, RunDir: "/r"})
	if err != nil {
		t.Fatal(err)
	}
	got := shellQuote(a)
	for _, want := range []string{
		"-accel tcg -m 256 -object memory-backend-ram,id=ram0,size=256M,reserve=off -machine memory-backend=ram0 -smp 2 -kernel k -append 'quiet panic=5 console=ttyS0 no_timer_check' -nodefaults -display none -no-reboot -serial stdio",
		"-drive file=/d.img,format=raw,if=virtio,cache=unsafe -drive file=/slow.img,format=raw,if=virtio,cache=unsafe,throttling.bps-write=8388608",
		"-netdev socket,id=n0,listen=127.0.0.1:4444 -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
		"-monitor unix:/s/monitor.sock,server=on,wait=off",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	if _, err := m.args(Config{Kernel: "k", Disks: []string{"/a,b"}}); err == nil {
		t.Error("disk path with a comma accepted")
	}
}
