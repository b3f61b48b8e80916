package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/journal"

	"github.com/kjump/kjump/internal/hibernate"
	"github.com/kjump/kjump/internal/status"
)

// recordOutcome keeps the outcome for 'hibernate status' and tells the
// journal. Only root records (the directory is root's); a record that
// cannot be written is reported and changes nothing else.
func recordOutcome(o status.Outcome, msg string) {
	pri := journal.PriInfo
	if o.Result == status.Refused || o.Result == status.Failed {
		pri = journal.PriErr
	}
	journalf(pri, "%s", msg)
	if os.Geteuid() != 0 {
		return
	}
	o.Time = time.Now().UTC()
	if err := status.Save(status.Dir, status.Hibernate, o); err != nil {
		fmt.Fprintf(os.Stderr, "hibernate: warning: cannot record the outcome for 'hibernate status': %v\n", err)
	}
}

// journalf logs to the journal when hibernate runs by hand: under a unit
// (systemd-sleep) stderr already goes to the journal, and the line would
// be there twice.
func journalf(pri journal.Priority, format string, a ...any) {
	if ok, _ := journal.StderrIsJournalStream(); ok || !journal.Enabled() {
		return
	}
	journal.Send(fmt.Sprintf(format, a...), pri, map[string]string{"SYSLOG_IDENTIFIER": "hibernate"})
}

// failureDetails is every failed check, with its detail.
func failureDetails(rep hibernate.Report) string {
	var out []string
	for _, c := range rep.Checks {
		if c.Status == hibernate.Fail {
			out = append(out, c.Name+": "+c.Detail)
		}
	}
	return strings.Join(out, "; ")
}
