package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/cli"
)

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
