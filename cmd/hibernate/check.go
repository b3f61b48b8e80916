package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/hibernate"
	"github.com/kjump/kjump/internal/sleepconf"
)

func init() {
	commands.Register(cli.Command{Name: "check", Summary: "check every prerequisite of hibernation (exit 0: it can proceed)", Run: runCheck})
}

func runCheck(args []string) error {
	printed, err := check(args, 0)
	if err != nil && !printed && hasJSONFlag(args) && !errors.Is(err, flag.ErrHelp) {
		cli.WriteJSONError(os.Stdout, err)
	}
	return err
}

// check runs 'hibernate check'; printed tells whether the report (JSON or
// text) was printed. rerun counts the runs before this one (see below).
func check(args []string, rerun int) (printed bool, err error) {
	stamp := fileStamp(configPath(args))
	cfg, err := loadConfig(args)
	if err != nil {
		return false, err
	}
	var o hibernate.Options
	fs := commands.FlagSet("check", "")
	helperFlags(fs, &o, cfg)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	updateLogind := fs.Bool("update-logind", false, "also let logind offer hibernation (CanHibernate) only if the check passes (kjump-canhibernate.service)")
	if err := commands.ParseTarget(fs, args, "to", &o.Target); err != nil {
		return false, err
	}
	targets := cfg.Targets
	if o.Target != "" {
		targets = []string{o.Target}
	}
	// The check may probe kexec_load, replacing a loaded helper.
	release, err := lockKjump("hibernate check")
	if err != nil {
		return false, err
	}
	defer release()
	co := checkOptions(cfg, o, targets, configPath(args))
	co.ResumeSide = true
	rep := hibernate.Check(co)
	if *updateLogind {
		if err := updateLogindPolicy(rep); err != nil {
			return false, err
		}
		// kjump-canhibernate.path starts this check when the configuration
		// changes; a change while it runs starts nothing (the start merges
		// into the running one), so logind would keep the answer for the
		// old file until the timer. Check again for the new one.
		if path := configPath(args); fileStamp(path) != stamp && rerun < 3 {
			fmt.Fprintf(os.Stderr, "hibernate check: %s changed during the check: checking again\n", path)
			return check(args, rerun+1)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		printReport(os.Stdout, rep, true)
	}
	if !rep.OK {
		if *asJSON {
			return true, &cli.ExitError{Code: 1, Err: fmt.Errorf("%s", failures(rep))}
		}
		return true, &cli.ExitError{Code: 1, Err: fmt.Errorf("hibernation cannot proceed: %s", failures(rep))}
	}
	if !*asJSON {
		fmt.Printf("hibernation can proceed (target %s)\n", orNone(rep.Target))
	}
	return true, nil
}

// printReport writes one line per check; all=false writes only WARN and
// FAIL lines (what hibernate now/checkpoint show before jumping).
func printReport(w io.Writer, rep hibernate.Report, all bool) {
	width := terminalWidth(w)
	for _, c := range rep.Checks {
		if !all && c.Status == hibernate.Pass {
			continue
		}
		head := fmt.Sprintf("%s  %-16s ", c.Status, c.Name)
		if width == 0 {
			// Not a terminal: one line per check, for grep and the journal.
			line := head + c.Detail
			if c.Fix != "" {
				line += "; fix: " + c.Fix
			}
			fmt.Fprintln(w, line)
			continue
		}
		fmt.Fprint(w, wrap(head, c.Detail, width))
		if c.Fix != "" {
			fmt.Fprint(w, wrap(strings.Repeat(" ", len(head)), "fix: "+c.Fix, width))
		}
	}
}

// terminalWidth is w's width in columns when w is a terminal that knows
// it, else 0 (no wrapping).
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0
	}
	cols, _, err := term.GetSize(int(f.Fd()))
	if err != nil || cols < 40 {
		return 0
	}
	return cols
}

// wrap writes text after head, broken at spaces to fit width columns, the
// following lines indented under the text.
func wrap(head, text string, width int) string {
	indent := strings.Repeat(" ", len(head))
	var b strings.Builder
	line := head
	col := len(head)
	for _, word := range strings.Fields(text) {
		if col > len(indent) && col+1+len(word) > width {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			line, col = indent, len(indent)
		}
		if col > len(indent) {
			line += " "
			col++
		}
		line += word
		col += len(word)
	}
	b.WriteString(line + "\n")
	return b.String()
}

func failures(rep hibernate.Report) string {
	var names []string
	for _, c := range rep.Checks {
		if c.Status == hibernate.Fail {
			names = append(names, c.Name)
		}
	}
	return fmt.Sprintf("%d failed (%s)", len(names), strings.Join(names, ", "))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// updateLogindPolicy makes logind's CanHibernate follow the report (see
// internal/sleepconf/logind.go for the mechanism).
func updateLogindPolicy(rep hibernate.Report) error {
	var why []string
	for _, c := range rep.Checks {
		if c.Status == hibernate.Fail {
			why = append(why, c.Name+": "+c.Detail)
		}
	}
	if err := sleepconf.SetHibernationAllowed(rep.OK, why, time.Now()); err != nil {
		return fmt.Errorf("cannot tell logind whether hibernation is possible: %w", err)
	}
	return nil
}

// fileStamp identifies a file's version: its inode (an editor that writes
// a new file and renames it over), size and modification and change times;
// "" when it cannot be read.
func fileStamp(path string) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d.%d:%d.%d", st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
}
