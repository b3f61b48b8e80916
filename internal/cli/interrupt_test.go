package cli

import (
	"bytes"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// A command that follows Context stops on a real SIGINT to this process
// and is reported once as interrupted, exit status 130; one that does not
// notice the first Ctrl-C ends at the second.
func TestCtrlCFollowedAndSecond(t *testing.T) {
	exited := make(chan int, 1)
	defer func(real func(int)) { exit = real }(exit)
	exit = func(code int) { exited <- code }

	var errb bytes.Buffer
	s := &Set{Prog: "prog", Stdout: &bytes.Buffer{}, Stderr: &errb}
	ready := make(chan struct{})
	s.Register(Command{Name: "follow", Run: func([]string) error {
		ctx := s.Context()
		close(ready)
		<-ctx.Done()
		return fmt.Errorf("writing /x: %w", ctx.Err())
	}})
	go func() { <-ready; syscall.Kill(syscall.Getpid(), syscall.SIGINT) }()
	if code := s.Main([]string{"follow"}); code != ExitInterrupted || errb.String() != "prog follow: interrupted\n" {
		t.Errorf("following command: exit %d, stderr %q", code, errb.String())
	}
	select {
	case code := <-exited:
		t.Errorf("a command following Context was ended (exit %d) instead of returning", code)
	default:
	}

	// Slow to notice: the first SIGINT cancels, the second exits.
	errb.Reset()
	release, stuck := make(chan struct{}), make(chan struct{})
	s.Register(Command{Name: "stuck", Run: func([]string) error {
		s.Context()
		close(stuck)
		<-release
		return nil
	}})
	go func() {
		<-stuck
		syscall.Kill(syscall.Getpid(), syscall.SIGINT)
		time.Sleep(100 * time.Millisecond)
		syscall.Kill(syscall.Getpid(), syscall.SIGINT)
	}()
	go func() {
		select {
		case code := <-exited:
			exited <- code
		case <-time.After(10 * time.Second):
		}
		close(release)
	}()
	s.Main([]string{"stuck"})
	if code := <-exited; code != ExitInterrupted || errb.String() != "prog stuck: interrupted\n" {
		t.Errorf("second Ctrl-C: exit %d, stderr %q", code, errb.String())
	}
}
