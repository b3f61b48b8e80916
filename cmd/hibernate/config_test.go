package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/hibernate"
)

func TestConfigPath(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "/etc/kjump.conf"},
		{[]string{"--to", "/dev/sdb2"}, "/etc/kjump.conf"},
		{[]string{"--config", "/tmp/a.conf"}, "/tmp/a.conf"},
		{[]string{"-config=/tmp/b.conf", "--json"}, "/tmp/b.conf"},
		{[]string{"--", "--config", "/tmp/c.conf"}, "/etc/kjump.conf"},
	} {
		if got := configPath(tc.args); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.args, got, tc.want)
		}
	}
}

// A misspelt key stops every command before it does anything, naming the
// file, line and key, with exit status 2.
func TestBadConfigRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kjump.conf")
	os.WriteFile(p, []byte("targets = [\"/dev/sdb2\"]\n[image]\nthreds = 4\n"), 0o644)
	for name, run := range map[string]func([]string) error{
		"check": runCheck, "prepare": runPrepare,
		"checkpoint": func(a []string) error { return runJump("checkpoint", a) },
	} {
		err := run([]string{"--config", p})
		var ee *cli.ExitError
		if !errors.As(err, &ee) || ee.Code != 2 || !strings.Contains(err.Error(), p+`: line 3: unknown key "image.threds"`) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Flags override the file; the file overrides the defaults.
func TestConfigBecomesFlagDefaults(t *testing.T) {
	p := filepath.Join(t.TempDir(), "kjump.conf")
	os.WriteFile(p, []byte("[image]\nlevel = \"best\"\nthreads = 3\n[helper]\nkernel = \"/k\"\n"), 0o644)
	cfg, err := loadConfig([]string{"--config", p})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args          []string
		level, kernel string
		threads       int
	}{
		{[]string{"--config", p}, "best", "/k", 3},
		{[]string{"--config", p, "--level", "fast", "--kernel", "/other"}, "fast", "/other", 3},
	} {
		fs := commands.FlagSet("t", "")
		opts := &hibernate.Options{}
		helperFlags(fs, opts, cfg)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if opts.Level != tc.level || opts.HelperKernel != tc.kernel || opts.Threads != tc.threads {
			t.Errorf("%v: level %s kernel %s threads %d", tc.args, opts.Level, opts.HelperKernel, opts.Threads)
		}
	}
}

// The positional TARGET of now and checkpoint is the target, with the
// options after it parsed too: never ignored, never replaced by the
// configured target.
func TestJumpArgsTarget(t *testing.T) {
	p := filepath.Join(t.TempDir(), "k.conf")
	os.WriteFile(p, []byte("targets = [\"/dev/configured\"]\n[image]\nthreads = 3\n"), 0o644)
	for _, tc := range []struct {
		mode    handoff.Mode
		args    []string
		target  string
		threads int
	}{
		{handoff.Checkpoint, []string{"/dev/sdb2"}, "/dev/sdb2", 0},
		{handoff.Checkpoint, []string{"--config", p, "/dev/sdb2", "--threads", "2"}, "/dev/sdb2", 2},
		{handoff.Now, []string{"--config", p, "/dev/sdb2"}, "/dev/sdb2", 3},
		{handoff.Now, []string{"--config", p}, "", 3},
	} {
		o, _, _, err := jumpArgs(tc.mode, tc.args)
		if err != nil || o.Target != tc.target || o.Threads != tc.threads {
			t.Errorf("%s %q: target %q threads %d, %v", tc.mode, tc.args, o.Target, o.Threads, err)
		}
	}
	for _, args := range [][]string{
		{"/dev/sdb2", "/dev/sdc2"},
		{"/dev/sdb2", "--no-such-option"},
		{"--to", "/dev/a", "/dev/b"},
		{"--config", filepath.Join(t.TempDir(), "missing.conf")},
	} {
		_, _, _, err := jumpArgs(handoff.Now, args)
		if !cli.IsUsage(err) {
			t.Errorf("now %q: %v, want a usage error (exit 2)", args, err)
		}
	}
}

// Every command refuses stray arguments and a missing --config file with
// exit status 2 before doing anything.
func TestUsageErrorsExit2(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.conf")
	for _, args := range [][]string{
		{"prepare", "extra"}, {"preload", "extra"}, {"check", "/dev/a", "/dev/b"},
		{"prepare", "--config", missing}, {"check", "--config", missing}, {"preload", "--config=" + missing},
		{"image"}, {"image", "frobnicate"}, {"image", "create", "--from", "x"}, {"systemd-sleep"},
		{"nosuch"}, {}, {"checkpoint", "a", "b"},
	} {
		if code := commands.Main(args); code != 2 {
			t.Errorf("hibernate %q: exit %d, want 2", args, code)
		}
	}
}

// Lines are broken at spaces to the terminal's width, continuation lines
// indented under the text; no word is lost or split.
func TestWrap(t *testing.T) {
	head := "FAIL  reserved-region  "
	text := "no memory is reserved for the helper kernel: add memmap=128M$0x15000000 to the kernel command line and reboot"
	got := wrap(head, text, 60)
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("not wrapped:\n%s", got)
	}
	for i, l := range lines {
		if len(l) > 60 {
			t.Errorf("line %d is %d columns: %q", i, len(l), l)
		}
		if i > 0 && !strings.HasPrefix(l, strings.Repeat(" ", len(head))) {
			t.Errorf("line %d not indented: %q", i, l)
		}
	}
	if strings.Join(strings.Fields(got), " ") != strings.Join(strings.Fields(head+text), " ") {
		t.Fatalf("words changed:\n%s", got)
	}
}

// The check's re-run after a configuration edit sees every kind of edit:
// written in place, and replaced by rename with the same size (sed -i).
func TestFileStampSeesEdits(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kjump.conf")
	if fileStamp(p) != "" {
		t.Fatal("a missing file has a stamp")
	}
	os.WriteFile(p, []byte("targets = [\"/dev/vdb\"]\n"), 0o644)
	a := fileStamp(p)
	tmp := filepath.Join(dir, "sedXYZ")
	os.WriteFile(tmp, []byte("targets = [\"/dev/vdz\"]\n"), 0o644)
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	b := fileStamp(p)
	f, _ := os.OpenFile(p, os.O_WRONLY, 0)
	f.WriteAt([]byte("b"), 20)
	f.Close()
	c := fileStamp(p)
	if a == "" || a == b || b == c {
		t.Errorf("stamps %q, %q, %q: an edit went unseen", a, b, c)
	}
}
