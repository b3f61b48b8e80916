package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
)

// Ctrl-C. Main catches SIGINT for the whole run, so every command answers
// it the same way: "prog command: interrupted" on stderr and exit status
// 130, never "context canceled" and never a silent death. A command that
// can stop cleanly at some point (remove a half-written file) asks for
// Context there: Ctrl-C then cancels that context and the command returns
// its error, which report prints as "interrupted". Anywhere else (a wait
// for the kjump lock, an open that blocks, a command with nothing to undo)
// Ctrl-C ends the process at once, as the default SIGINT action would,
// after saying so; so does a second Ctrl-C when the command is slow to
// notice the first.

// exit ends the process; a variable so in-process tests can watch it.
var exit = os.Exit

// interrupts is one Main run's Ctrl-C state.
type interrupts struct {
	mu        sync.Mutex
	ctx       context.Context
	cancel    context.CancelFunc
	following bool // the command asked for Context: cancel, do not exit
}

// Context is canceled by Ctrl-C. The command calling it takes over
// Ctrl-C from then on: it must notice the cancellation and return (an
// error wrapping context.Canceled is reported as "interrupted", 130).
// Outside Main (tests calling a command directly) it is never canceled.
func (s *Set) Context() context.Context {
	in := s.interrupts
	if in == nil {
		return context.Background()
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.following = true
	return in.ctx
}

// catchInterrupts starts answering SIGINT for command name; stop ends it.
func (s *Set) catchInterrupts(name string) (stop func()) {
	in := &interrupts{}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	s.interrupts = in
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range sig {
			in.mu.Lock()
			follow := in.following && in.ctx.Err() == nil
			in.cancel()
			in.mu.Unlock()
			if !follow {
				fmt.Fprintf(s.stderr(), "%s: interrupted\n", name)
				exit(ExitInterrupted)
				return
			}
		}
	}()
	return func() {
		signal.Stop(sig)
		close(sig) // no delivery after Stop returns
		<-done
		in.cancel()
		s.interrupts = nil
	}
}
