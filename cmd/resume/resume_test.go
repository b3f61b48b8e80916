package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/status"
)

func TestMain(m *testing.M) {
	status.RunDir, _ = os.MkdirTemp("", "kjump-run") // never this machine's /run/kjump
	code := m.Run()
	os.RemoveAll(status.RunDir)
	os.Exit(code)
}

func writeConf(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "kjump.conf")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// policy = never: resume does nothing and the boot goes on, even with
// targets that do not exist.
func TestResumePolicyNever(t *testing.T) {
	p := writeConf(t, "targets = [\"/dev/nonexistent-kjump\"]\n[resume]\npolicy = \"never\"\n")
	if err := runResume([]string{"--config", p}); err != nil {
		t.Fatal(err)
	}
}

// Every configured target is tried; none holding an image means a normal
// boot (exit 0), and unreachable ones are skipped. (Runs as root, like
// the rest of the tests.)
func TestResumeTriesTargetsInOrder(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	p := writeConf(t, "targets = [\"/dev/nonexistent-kjump\", \""+a+"\", \""+b+"\"]\n")
	if err := runResume([]string{"--config", p}); err != nil {
		t.Fatal(err)
	}
}

func TestResumeNoTarget(t *testing.T) {
	p := writeConf(t, "")
	err := runResume([]string{"--config", p})
	var ee *cli.ExitError
	if cmdlineArg("kjump.resume=") == "" && (!errors.As(err, &ee) || ee.Code != 2 || !strings.Contains(err.Error(), "targets in "+p)) {
		t.Fatalf("%v", err)
	}
}

// Every boot-time outcome is recorded for 'hibernate status' and written
// to the kernel log, which the journal keeps: nothing to resume, refused
// (here: a damaged image) and why.
func TestResumeOutcomeRecordedAndLogged(t *testing.T) {
	status.RunDir = t.TempDir()
	empty := t.TempDir()
	p := writeConf(t, "targets = [\""+empty+"\"]\n")
	if err := runResume([]string{"--config", p}); err != nil {
		t.Fatal(err)
	}
	o, err := status.Load(status.RunDir, status.Resume)
	if err != nil || o == nil || o.Result != status.None || !strings.Contains(o.Detail, "no image to resume") {
		t.Fatalf("nothing to resume: %+v %v", o, err)
	}
	if !inKernelLog(t, "kjump-resume: nothing to resume (no image to resume on "+empty) {
		t.Fatal("no kernel log line for 'nothing to resume'")
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "kjump.img"), bytes.Repeat([]byte("KJUMPIMG not really "), 1000), 0o600)
	err = runResume([]string{"--config", p, "--from", bad})
	if err == nil {
		t.Fatal("a damaged image was not refused")
	}
	if o, _ = status.Load(status.RunDir, status.Resume); o == nil || o.Result != status.Refused || o.Detail == "" {
		t.Fatalf("refused: %+v", o)
	}
	if !inKernelLog(t, "kjump-resume: not resumed: "+cli.Message(err)[:40]) {
		t.Fatalf("no kernel log line for the refusal %q", err)
	}
}

// inKernelLog reads /dev/kmsg's records for a message containing s.
func inKernelLog(t *testing.T, s string) bool {
	f, err := os.OpenFile("/dev/kmsg", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		rec, err := r.ReadString('\n')
		if err != nil {
			return false
		}
		if strings.Contains(rec, s) {
			return true
		}
	}
}

// Generating the completion script (make install, packaging) runs each
// command only as far as its option parsing: resume must not record or
// log a "refused" resume for it.
func TestCompletionRecordsNoOutcome(t *testing.T) {
	var out bytes.Buffer
	commands.Stdout = &out
	defer func() { commands.Stdout = nil }()
	if code := commands.Main([]string{"completion", "bash"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "--from") {
		t.Errorf("the script lacks resume's options:\n%s", out.String())
	}
	if b, err := os.ReadFile(filepath.Join(status.RunDir, "resume.json")); err == nil {
		t.Errorf("completion recorded a resume outcome: %s", b)
	}
}
