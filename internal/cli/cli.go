// Package cli is the small subcommand dispatcher shared by the hibernate and
// resume commands. Each subcommand lives in its own file and registers itself,
// so commands grow without touching a central switch.
//
// It stays hand-written rather than built on a CLI library (spf13/cobra,
// urfave/cli): the hibernate binary is also PID 1 of the helper kernel and is
// copied into every helper initramfs, the standard flag package already
// parses every option, and what the commands needed (options after
// arguments, one exit status for usage errors, help on stdout, --version,
// shell completion) is a few functions here. A library would also change
// the option syntax users and units already use (-config=FILE).
//
// Exit status: 0 success, 1 failure, 2 usage error (never 1: at boot, 1
// from resume means "image refused"), 130 interrupted (Ctrl-C, see
// interrupt.go); commands may return their own through ExitError.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
)

// Command is one subcommand: `prog NAME args...`.
type Command struct {
	Name    string
	Summary string
	Hidden  bool // internal modes (the helper kernel's PID 1) stay out of the help
	// Subcommands, if any, are offered by shell completion after NAME.
	Subcommands []string
	Run         func(args []string) error
}

// ExitError carries a specific exit status through Main.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Exit statuses every command shares.
const (
	ExitFailure     = 1
	ExitUsage       = 2
	ExitInterrupted = 130 // 128 + SIGINT, as shells report it
)

// Usagef is a usage error: wrong or missing arguments (exit status 2).
func Usagef(format string, a ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, a...)}
}

// IsUsage reports whether err is a usage error.
func IsUsage(err error) bool {
	var ee *ExitError
	return errors.As(err, &ee) && ee.Code == ExitUsage
}

// ErrInterrupted is what a command interrupted by Ctrl-C reports.
var ErrInterrupted = errors.New("interrupted")

// Set is a program's registered subcommands.
type Set struct {
	Prog string
	// Default runs when no command is named (no arguments, or only
	// options): `resume` alone resumes.
	Default string
	// Version is printed by --version.
	Version  string
	commands map[string]Command
	// Stdout and Stderr default to the process's (tests set them).
	Stdout, Stderr io.Writer

	// describing: Parse records the flag set and stops the command
	// (shell completion learns each command's options this way).
	describing bool
	described  *flag.FlagSet

	interrupts *interrupts // while Main runs a command (interrupt.go)
}

// ErrDescribed is what Parse returns while shell completion learns a
// command's options (Flags): the command must return it at once and do
// nothing else; in particular not record or log it as its outcome.
var ErrDescribed = errors.New("cli: described")

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

// Lookup returns a registered command.
func (s *Set) Lookup(name string) (Command, bool) {
	c, ok := s.commands[name]
	return c, ok
}

func (s *Set) stdout() io.Writer {
	if s.Stdout != nil {
		return s.Stdout
	}
	return os.Stdout
}

func (s *Set) stderr() io.Writer {
	if s.Stderr != nil {
		return s.Stderr
	}
	return os.Stderr
}

// visible lists the commands the help shows, by name.
func (s *Set) visible() []string {
	names := make([]string, 0, len(s.commands))
	for n, c := range s.commands {
		if !c.Hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Usage writes the list of visible subcommands.
func (s *Set) Usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s COMMAND [options] [arguments]\n\ncommands:\n", s.Prog)
	for _, n := range s.visible() {
		fmt.Fprintf(w, "  %-16s %s\n", n, s.commands[n].Summary)
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND -h' for a command's options, '%s --version' for the version.\n", s.Prog, s.Prog)
	fmt.Fprintf(w, "Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted (see %s(8)).\n", s.Prog)
}

// Main runs the subcommand named by args[0] and returns the process exit
// code. Errors are printed as "prog command: message" on stderr; help and
// the version go to stdout.
func (s *Set) Main(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help", "help":
			if len(args) > 1 && args[0] == "help" {
				return s.Main([]string{args[1], "-h"})
			}
			s.Usage(s.stdout())
			return 0
		case "-version", "--version", "version":
			fmt.Fprintf(s.stdout(), "%s (kjump) %s\n", s.Prog, s.versionString())
			return 0
		}
	}
	// The default command also takes a first argument that names a
	// target rather than a command (`resume /dev/sdb2`, `resume UUID=...`).
	if s.Default != "" && (len(args) == 0 || strings.HasPrefix(args[0], "-") ||
		s.commands[args[0]].Run == nil && strings.ContainsAny(args[0], "/=:")) {
		args = append([]string{s.Default}, args...)
	}
	if len(args) == 0 {
		s.Usage(s.stderr())
		return ExitUsage
	}
	c, ok := s.commands[args[0]]
	if !ok {
		fmt.Fprintf(s.stderr(), "%s: unknown command %q\n\n", s.Prog, args[0])
		s.Usage(s.stderr())
		return ExitUsage
	}
	defer s.catchInterrupts(s.commandName(c))()
	return s.report(c, c.Run(args[1:]))
}

// commandName is how messages name c: "prog command", or "prog" for the
// default command.
func (s *Set) commandName(c Command) string {
	if c.Name == s.Default {
		return s.Prog
	}
	return s.Prog + " " + c.Name
}

// report prints a command's error and returns its exit status.
func (s *Set) report(c Command, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	name := s.commandName(c)
	code := ExitFailure
	var ee *ExitError
	if errors.As(err, &ee) {
		code = ee.Code
	}
	msg := Message(err)
	if errors.Is(err, context.Canceled) || errors.Is(err, ErrInterrupted) {
		msg, code = "interrupted", ExitInterrupted
	}
	fmt.Fprintf(s.stderr(), "%s: %s\n", name, msg)
	if code == ExitUsage {
		fmt.Fprintf(s.stderr(), "Run '%s -h' for usage.\n", name)
	}
	return code
}

// Message is err's text without the repetitions wrapping produces when a
// caller adds what the callee already said ("open x: permission denied:
// permission denied"), and "context canceled" spelled for people.
func Message(err error) string {
	msg := strings.TrimSpace(err.Error())
	msg = strings.ReplaceAll(msg, context.Canceled.Error(), "interrupted")
	parts := strings.Split(msg, ": ")
	var out []string
	for _, p := range parts {
		if n := len(out); n > 0 && (p == out[n-1] || strings.HasPrefix(p, out[n-1]+";")) {
			out[n-1] = p // "denied: denied; run as root" keeps the longer
			continue
		}
		out = append(out, p)
	}
	return strings.Join(out, ": ")
}

func (s *Set) versionString() string {
	if s.Version != "" {
		return s.Version
	}
	return "unknown"
}

// FlagSet returns a flag set that reports errors instead of exiting, with a
// usage line naming the program and command. Parse it with Set.Parse.
func (s *Set) FlagSet(name, argsUsage string) *flag.FlagSet {
	fs := flag.NewFlagSet(s.Prog+" "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s %s [options] %s\n\noptions:\n", s.Prog, name, argsUsage)
		fs.PrintDefaults()
	}
	return fs
}

// Parse parses options anywhere among the arguments (`cmd TARGET --json`
// as well as `cmd --json TARGET`; "--" ends the options) and returns the
// arguments that are not options. -h prints the help on stdout and returns
// flag.ErrHelp (exit status 0); a bad option is a usage error.
func (s *Set) Parse(fs *flag.FlagSet, args []string) ([]string, error) {
	if s.describing {
		s.described = fs
		return nil, ErrDescribed
	}
	fs.SetOutput(io.Discard) // the flag package's own messages would double ours
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(s.stdout())
			fs.Usage()
			return nil, flag.ErrHelp
		}
		if err != nil {
			return nil, &ExitError{Code: ExitUsage, Err: err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		// flag stops at the first non-option, or after "--" (then the
		// rest are all arguments).
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	fs.SetOutput(s.stderr())
	return pos, nil
}

// ParseNone parses a command that takes options only: any other argument
// is a usage error, never silently ignored.
func (s *Set) ParseNone(fs *flag.FlagSet, args []string) error {
	pos, err := s.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return Usagef("unexpected argument %q: this command takes options only", pos[0])
	}
	return nil
}

// ParseTarget parses a command whose one optional argument is the same as
// its option flagName (`hibernate now /dev/sdb2` is `hibernate now --to
// /dev/sdb2`): *target receives it. Two targets, or an argument that
// contradicts the option, are usage errors.
func (s *Set) ParseTarget(fs *flag.FlagSet, args []string, flagName string, target *string) error {
	pos, err := s.Parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 1:
		return Usagef("one TARGET at most, got %d: %s", len(pos), strings.Join(pos, " "))
	case len(pos) == 1 && *target != "" && *target != pos[0]:
		return Usagef("target %q and --%s %q disagree: give one", pos[0], flagName, *target)
	case len(pos) == 1:
		*target = pos[0]
	}
	return nil
}

// Flags runs a command far enough to learn its options, without doing
// anything: the command's Run stops at its first Parse. Commands that
// parse nothing, or fail before parsing, have none.
func (s *Set) Flags(name string) []string {
	c, ok := s.commands[name]
	if !ok {
		return nil
	}
	s.describing, s.described = true, nil
	defer func() { s.describing, s.described = false, nil }()
	func() {
		defer func() { recover() }()
		c.Run(nil)
	}()
	if s.described == nil {
		return nil
	}
	var out []string
	s.described.VisitAll(func(f *flag.Flag) { out = append(out, "--"+f.Name) })
	return append(out, "--help")
}

// BuildVersion is the version to print: set, when given (the build sets
// main.version with -ldflags -X), else what the Go toolchain recorded (a
// module version, or the VCS revision of a source build).
func BuildVersion(set string) string {
	if set != "" {
		return set
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "unknown (built from source without version control information)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "git " + rev
}

// ExitCode is the exit status Main gives err.
func ExitCode(err error) int {
	var ee *ExitError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, context.Canceled) || errors.Is(err, ErrInterrupted):
		return ExitInterrupted
	case errors.As(err, &ee):
		return ee.Code
	}
	return ExitFailure
}

// WriteJSONError writes err as {"error": ..., "exit_status": ...} for
// commands run with --json: a script parsing their output gets JSON on
// failure too. Main still prints the message on stderr.
func WriteJSONError(w io.Writer, err error) {
	b, _ := json.MarshalIndent(struct {
		Error      string `json:"error"`
		ExitStatus int    `json:"exit_status"`
	}{Message(err), ExitCode(err)}, "", "  ")
	fmt.Fprintln(w, string(b))
}
