package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// testSet has a command with options only, one with an optional target,
// and one that fails in several ways.
func testSet() (*Set, *bytes.Buffer, *bytes.Buffer, *string) {
	var out, errb bytes.Buffer
	s := &Set{Prog: "prog", Version: "1.2.3", Stdout: &out, Stderr: &errb}
	target := new(string)
	s.Register(Command{Name: "opts", Summary: "options only", Run: func(args []string) error {
		fs := s.FlagSet("opts", "")
		fs.Bool("json", false, "JSON")
		return s.ParseNone(fs, args)
	}})
	s.Register(Command{Name: "jump", Summary: "optional target", Run: func(args []string) error {
		fs := s.FlagSet("jump", "[TARGET]")
		fs.StringVar(target, "to", "", "target")
		fs.Int("threads", 0, "threads")
		return s.ParseTarget(fs, args, "to", target)
	}})
	s.Register(Command{Name: "fail", Summary: "fails", Run: func(args []string) error {
		switch args[0] {
		case "canceled":
			return fmt.Errorf("writing image: %w", context.Canceled)
		case "doubled":
			return fmt.Errorf("open /x: permission denied: %w", os.ErrPermission)
		case "code":
			return &ExitError{Code: 4, Err: errors.New("invalidated")}
		}
		return errors.New("plain failure")
	}})
	s.Register(s.CompletionCommand())
	return s, &out, &errb, target
}

func TestExitStatusAndStreams(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		code       int
		out, err   string // substrings of stdout and stderr
		noOut      bool
		targetWant string
	}{
		{args: nil, code: 2, err: "usage: prog COMMAND", noOut: true},
		{args: []string{"--help"}, code: 0, out: "usage: prog COMMAND"},
		{args: []string{"-h"}, code: 0, out: "opts"},
		{args: []string{"help", "jump"}, code: 0, out: "usage: prog jump [options] [TARGET]"},
		{args: []string{"jump", "-h"}, code: 0, out: "-threads"},
		{args: []string{"--version"}, code: 0, out: "prog (kjump) 1.2.3"},
		{args: []string{"nosuch"}, code: 2, err: `unknown command "nosuch"`},
		{args: []string{"opts", "extra"}, code: 2, err: `unexpected argument "extra"`},
		{args: []string{"opts", "--nosuch"}, code: 2, err: "flag provided but not defined: -nosuch\nRun 'prog opts -h' for usage."},
		{args: []string{"jump", "/dev/sdb2", "--threads", "x"}, code: 2, err: `invalid value "x" for flag -threads`},
		{args: []string{"jump", "/dev/sdb2", "/dev/sdc"}, code: 2, err: "one TARGET at most"},
		{args: []string{"jump", "--to", "/dev/a", "/dev/b"}, code: 2, err: `target "/dev/b" and --to "/dev/a" disagree`},
		{args: []string{"jump", "/dev/sdb2", "--threads", "3"}, code: 0, targetWant: "/dev/sdb2"},
		{args: []string{"jump", "--", "-odd-name"}, code: 0, targetWant: "-odd-name"},
		{args: []string{"fail", "canceled"}, code: 130, err: "prog fail: interrupted\n"},
		{args: []string{"fail", "doubled"}, code: 1, err: "prog fail: open /x: permission denied\n"},
		{args: []string{"fail", "code"}, code: 4, err: "invalidated"},
		{args: []string{"fail", "plain"}, code: 1, err: "prog fail: plain failure\n"},
	} {
		s, out, errb, target := testSet()
		code := s.Main(tc.args)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) ||
			tc.noOut && out.Len() > 0 || tc.targetWant != "" && *target != tc.targetWant {
			t.Errorf("%q: exit %d (want %d), target %q\nstdout: %s\nstderr: %s", tc.args, code, tc.code, *target, out, errb)
		}
		if tc.code == 0 && errb.Len() > 0 {
			t.Errorf("%q: succeeded with stderr %q", tc.args, errb)
		}
	}
}

func TestParseIntersperced(t *testing.T) {
	s := &Set{Prog: "p"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	j := fs.Bool("json", false, "")
	f := fs.Bool("force", false, "")
	pos, err := s.Parse(fs, []string{"a", "--json", "b", "--force", "--", "--c"})
	if err != nil || !*j || !*f || !reflect.DeepEqual(pos, []string{"a", "b", "--c"}) {
		t.Fatalf("pos %q json %v force %v err %v", pos, *j, *f, err)
	}
}

func TestMessage(t *testing.T) {
	for in, want := range map[string]string{
		"a: permission denied: permission denied": "a: permission denied",
		"verify: context canceled":                "verify: interrupted",
		"x: y: x":                                 "x: y: x",
		"open /x: stat /x: permission denied: permission denied; run as root": "open /x: stat /x: permission denied; run as root",
	} {
		if got := Message(errors.New(in)); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

// The completion scripts are valid shell and offer commands and options.
func TestCompletion(t *testing.T) {
	s, out, _, _ := testSet()
	if code := s.Main([]string{"completion", "bash"}); code != 0 {
		t.Fatal(code)
	}
	script := filepath.Join(t.TempDir(), "prog.bash")
	os.WriteFile(script, out.Bytes(), 0o644)
	for _, tc := range []struct {
		words string
		cword int
		want  string
	}{
		{"prog j", 1, "jump"},
		{"prog jump --th", 2, "--threads"},
		{"prog completion z", 2, "zsh"},
	} {
		cmd := exec.Command("bash", "-c", fmt.Sprintf(`source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _prog; echo "${COMPREPLY[@]}"`, script, tc.words, tc.cword))
		got, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(got), tc.want) {
			t.Errorf("bash completion of %q: %q %v", tc.words, got, err)
		}
	}
	out.Reset()
	if code := s.Main([]string{"completion", "zsh"}); code != 0 || !strings.HasPrefix(out.String(), "#compdef prog") {
		t.Fatalf("zsh: %d %q", code, out)
	}
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Fatalf("zsh is needed to check the zsh completion script (apt-get install zsh; .ci/deps.sh does): %v", err)
	}
	p := filepath.Join(t.TempDir(), "_prog")
	os.WriteFile(p, out.Bytes(), 0o644)
	if o, err := exec.Command(zsh, "-n", p).CombinedOutput(); err != nil {
		t.Errorf("zsh -n: %v %s", err, o)
	}
	if code := s.Main([]string{"completion", "fish"}); code != 2 {
		t.Errorf("unknown shell: exit %d", code)
	}
}

// A program with a default command runs it for options alone or a first
// argument that is a target, not a command name.
func TestDefaultCommand(t *testing.T) {
	var got []string
	s := &Set{Prog: "resume", Default: "run", Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	s.Register(Command{Name: "run", Run: func(args []string) error { got = args; return nil }})
	s.Register(Command{Name: "image", Run: func(args []string) error { got = append([]string{"image"}, args...); return nil }})
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 0, ""},
		{[]string{"--from", "/dev/a"}, 0, "--from /dev/a"},
		{[]string{"/dev/sdb2"}, 0, "/dev/sdb2"},
		{[]string{"UUID=1234", "--force"}, 0, "UUID=1234 --force"},
		{[]string{"image", "info"}, 0, "image info"},
		{[]string{"imgae"}, 2, ""},
	} {
		got = nil
		if code := s.Main(tc.args); code != tc.code || strings.Join(got, " ") != tc.want {
			t.Errorf("%q: exit %d, ran with %q", tc.args, code, got)
		}
	}
}
