package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/hibernate"
	"github.com/kjump/kjump/internal/sleepconf"
)

func init() {
	commands.Register(cli.Command{Name: "check", Summary: "check every prerequisite of hibernation (exit 0: it can proceed)", Run: runCheck})
}

func runCheck(args []string) error {
	cfg, err := loadConfig(args)
	if err != nil {
		return err
	}
	var o hibernate.Options
	fs := commands.FlagSet("check", "")
	helperFlags(fs, &o, cfg)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	updateLogind := fs.Bool("update-logind", false, "also let logind offer hibernation (CanHibernate) only if the check passes (kjump-canhibernate.service)")
	if err := commands.ParseTarget(fs, args, "to", &o.Target); err != nil {
		return err
	}
	targets := cfg.Targets
	if o.Target != "" {
		targets = []string{o.Target}
	}
	// The check may probe kexec_load, replacing a loaded helper.
	release, err := lockKjump("hibernate check")
	if err != nil {
		return err
	}
	defer release()
	rep := hibernate.Check(checkOptions(cfg, o, targets, configPath(args)))
	if *updateLogind {
		if err := updateLogindPolicy(rep); err != nil {
			return err
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
			return &cli.ExitError{Code: 1, Err: fmt.Errorf("%s", failures(rep))}
		}
		return &cli.ExitError{Code: 1, Err: fmt.Errorf("hibernation cannot proceed: %s", failures(rep))}
	}
	if !*asJSON {
		fmt.Printf("hibernation can proceed (target %s)\n", orNone(rep.Target))
	}
	return nil
}

// printReport writes one line per check; all=false writes only WARN and
// FAIL lines (what hibernate now/checkpoint show before jumping).
func printReport(w io.Writer, rep hibernate.Report, all bool) {
	for _, c := range rep.Checks {
		if !all && c.Status == hibernate.Pass {
			continue
		}
		line := fmt.Sprintf("%s  %-16s %s", c.Status, c.Name, c.Detail)
		if c.Fix != "" {
			line += "; fix: " + c.Fix
		}
		fmt.Fprintln(w, line)
	}
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
