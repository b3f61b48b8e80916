// Package cli is the small subcommand dispatcher shared by the hibernate and
// resume commands. Each subcommand lives in its own file and registers itself,
// so commands grow without touching a central switch.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Command is one subcommand: `prog NAME args...`.
type Command struct {
	Name    string
	Summary string
	Hidden  bool // internal modes (the helper kernel's PID 1) stay out of the help
	Run     func(args []string) error
}

// ExitError carries a specific exit status through Main.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Set is a program's registered subcommands.
type Set struct {
	Prog string
	// Default runs when no command is named (no arguments, or only
	// options): `resume` alone resumes.
	Default  string
	commands map[string]Command
}

// Register adds a subcommand; duplicate names are a programming error.
func (s *Set) Register(c Command) {
	if s.commands == nil {
		s.commands = map[string]Command{}
	}
	if _, dup := s.commands[c.Name]; dup {
		panic("cli: duplicate command " + c.Name)
	}
	s.commands[c.Name] = c
}

// Usage writes the list of visible subcommands.
func (s *Set) Usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s COMMAND [options]\n\ncommands:\n", s.Prog)
	names := make([]string, 0, len(s.commands))
	for n, c := range s.commands {
		if !c.Hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, s.commands[n].Summary)
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND -h' for a command's options.\n", s.Prog)
}

// Main runs the subcommand named by args[0] and returns the process exit code.
// Errors are printed as "prog: message" on stderr.
func (s *Set) Main(args []string) int {
	if s.Default != "" && (len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help") {
		args = append([]string{s.Default}, args...)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		s.Usage(os.Stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := s.commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: unknown command %q\n\n", s.Prog, args[0])
		s.Usage(os.Stderr)
		return 2
	}
	err := c.Run(args[1:])
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	name := s.Prog + " " + c.Name
	if c.Name == s.Default {
		name = s.Prog
	}
	fmt.Fprintf(os.Stderr, "%s: %s\n", name, strings.TrimSpace(err.Error()))
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}

// FlagSet returns a flag set that reports errors instead of exiting, with a
// usage line naming the program and command.
func (s *Set) FlagSet(name, argsUsage string) *flag.FlagSet {
	fs := flag.NewFlagSet(s.Prog+" "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s %s [options] %s\n", s.Prog, name, argsUsage)
		fs.PrintDefaults()
	}
	return fs
}
