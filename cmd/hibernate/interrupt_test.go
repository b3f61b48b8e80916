package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Ctrl-C on the real binary, blocked where no context reaches (opening a
// FIFO nobody writes to, as a core file streamed from another tool would
// be): one line saying "interrupted", nothing doubled, nothing else, exit
// status 130 (not death by the signal, which a shell would also show as
// 130 but with no word of what happened).
func TestCtrlCBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "hibernate")
	gobuild := exec.Command("go", "build", "-o", bin, ".")
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := gobuild.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	fifo := filepath.Join(dir, "core.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "image", "create", "--from", fifo, "--to", filepath.Join(dir, "out.img"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if err := waitBlockedOnFIFO(cmd.Process.Pid, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGINT; stderr %q", stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("exit: %v, want status 130", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() || ws.ExitStatus() != 130 {
		t.Errorf("wait status %v (signaled %v, exit %d), want exit status 130", ws, ws.Signaled(), ws.ExitStatus())
	}
	if got := stderr.String(); got != "hibernate image: interrupted\n" {
		t.Errorf("stderr %q, want exactly %q", got, "hibernate image: interrupted\n")
	}
	if stdout.Len() > 0 {
		t.Errorf("stdout %q, want nothing", stdout.String())
	}
}

// waitBlockedOnFIFO waits until one of pid's threads sleeps in the
// kernel's FIFO open (wait_for_partner): main has installed its SIGINT
// handling by then.
func waitBlockedOnFIFO(pid int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var seen []string
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/wchan")
		seen = seen[:0]
		for _, w := range tasks {
			b, _ := os.ReadFile(w)
			if strings.TrimSpace(string(b)) == "wait_for_partner" {
				return nil
			}
			seen = append(seen, string(b))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("the command never blocked opening the FIFO (thread wait channels: " + strings.Join(seen, " ") + ")")
}
