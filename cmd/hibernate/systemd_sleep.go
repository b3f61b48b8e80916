package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/coreos/go-systemd/v22/journal"

	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/sleepconf"
	"github.com/kjump/kjump/internal/suspend"
)

func init() {
	commands.Register(cli.Command{Name: "systemd-sleep", Summary: "what systemd-hibernate.service runs with kjump: system-sleep hooks around 'hibernate now', logged to the journal",
		Run: runSystemdSleep})
}

// systemd-sleep(8) runs every executable in its system-sleep directory
// with "pre OPERATION" before sleeping and "post OPERATION" after waking:
// /usr/lib/systemd/system-sleep upstream, /lib/systemd/system-sleep in
// Debian's systemd 252 (one directory on merged-/usr systems; a name in
// both runs once).
var systemSleepDirs = []string{"/usr/lib/systemd/system-sleep", "/lib/systemd/system-sleep"}

// hookTimeout is systemd-sleep's limit for the hooks of one phase.
const hookTimeout = 90 * time.Second

// The message IDs systemd-sleep logs (sd-messages.h SD_MESSAGE_SLEEP_START
// and _STOP), so `journalctl MESSAGE_ID=...` finds kjump's sleeps too.
const (
	sleepStartID = "6bbd95ee977941e497c48be27c254128"
	sleepStopID  = "8811e6df2a8e40f58a94cea26f8ebf14"
)

// runSystemdSleep replaces `systemd-sleep hibernate`: hooks, then the jump
// (which powers off, and returns only once the machine has been resumed),
// then hooks again. A refused or failed hibernate leaves the machine
// running, is logged as systemd logs a failed sleep, and fails the unit.
func runSystemdSleep(args []string) error {
	if len(args) > 0 && args[0] == "hybrid-sleep" {
		err := errors.New("hybrid-sleep is not done by kjump: its checkpoint returns to a running system whose disks can change before it suspends, so the image could not be resumed safely after a power loss; use suspend-then-hibernate (HibernateDelaySec= in sleep.conf) or hibernate")
		sleepLog(journal.PriErr, sleepStopID, "hybrid-sleep", "Failed to put system to sleep. System resumed again: "+err.Error())
		return err
	}
	if len(args) == 0 || args[0] != "hibernate" && args[0] != "suspend-then-hibernate" {
		return &cli.ExitError{Code: 2, Err: errors.New("usage: hibernate systemd-sleep hibernate|suspend-then-hibernate [hibernate now options]: only hibernation goes through kjump (plain suspend stays with systemd-sleep)")}
	}
	op, rest := args[0], args[1:]
	// One kjump run from the pre hooks to the post hooks; runJump inside
	// does not lock again.
	release, err := lockKjump("hibernate systemd-sleep " + op)
	if err != nil {
		sleepLog(journal.PriErr, sleepStopID, op, "Failed to put system to sleep: "+err.Error())
		return err
	}
	defer release()
	if op == "suspend-then-hibernate" {
		runSleepHooks("pre", op)
		err := suspendThenHibernate(op, rest)
		runSleepHooks("post", op)
		return err
	}
	runSleepHooks("pre", op)
	notify("STATUS=Hibernating through kjump (kexec jump)")
	sleepLog(journal.PriInfo, sleepStartID, op, fmt.Sprintf("Entering sleep state '%s' through kjump (kexec jump)...", op))
	err = runJump(handoff.Now, rest)
	if err != nil {
		sleepLog(journal.PriErr, sleepStopID, op, fmt.Sprintf("Failed to put system to sleep. System resumed again: %v", err))
	} else {
		sleepLog(journal.PriInfo, sleepStopID, op, "System returned from sleep state (resumed by kjump).")
	}
	notify("STATUS=Resumed")
	runSleepHooks("post", op)
	return err
}

// runSleepHooks runs the system-sleep hooks of one phase in parallel, as
// systemd-sleep does; their failures are logged and otherwise ignored.
func runSleepHooks(phase, op string) {
	ctx, cancel := context.WithTimeout(context.Background(), hookTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, h := range sleepHooks() {
		wg.Add(1)
		go func(h string) {
			defer wg.Done()
			cmd := exec.CommandContext(ctx, h, phase, op)
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			if err := cmd.Run(); err != nil {
				sleepLog(journal.PriWarning, "", op, fmt.Sprintf("system-sleep hook %s %s %s failed: %v", h, phase, op, err))
			}
		}(h)
	}
	wg.Wait()
}

// sleepHooks lists the executable files of the system-sleep directories,
// by name; a link to /dev/null masks a hook.
func sleepHooks() []string {
	byName := map[string]string{}
	for _, dir := range systemSleepDirs {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			if _, seen := byName[e.Name()]; seen {
				continue
			}
			byName[e.Name()] = ""
			if t, err := filepath.EvalSymlinks(p); err == nil && t == os.DevNull {
				continue
			}
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
				byName[e.Name()] = p
			}
		}
	}
	var hooks []string
	for _, p := range byName {
		if p != "" {
			hooks = append(hooks, p)
		}
	}
	sort.Strings(hooks)
	return hooks
}

// sleepLog writes a structured journal entry when the journal is our
// stderr (running as a unit), else a plain line on stderr.
func sleepLog(pri journal.Priority, msgID, op, msg string) {
	if ok, _ := journal.StderrIsJournalStream(); ok && journal.Enabled() {
		vars := map[string]string{"SLEEP": op, "SYSLOG_IDENTIFIER": "hibernate"}
		if msgID != "" {
			vars["MESSAGE_ID"] = msgID
		}
		if journal.Send(msg, pri, vars) == nil {
			return
		}
	}
	fmt.Fprintln(os.Stderr, "hibernate: "+msg)
}

// notify tells systemd our status (NotifyAccess=main in the drop-in); a
// no-op outside a unit.
func notify(state string) { daemon.SdNotify(false, state) }

// suspendThenHibernate is systemd's suspend-then-hibernate with kjump
// doing the hibernation: suspend with a wake-up alarm HibernateDelaySec=
// away; woken by the alarm, hibernate through kjump; woken earlier (lid,
// key), stay up. A failed hibernation leaves the machine running, as
// after any failed kjump hibernation; nothing falls back to swsusp.
func suspendThenHibernate(op string, rest []string) error {
	cfg, err := sleepconf.Read()
	if err != nil {
		sleepLog(journal.PriErr, sleepStopID, op, fmt.Sprintf("Failed to put system to sleep: %v", err))
		return err
	}
	if _, err := suspend.WakeRTC(); err != nil {
		// Suspending without a way to wake up would leave the machine
		// asleep until its battery is empty: hibernate at once instead.
		sleepLog(journal.PriWarning, "", op, fmt.Sprintf("%v; hibernating now instead of suspending first.", err))
		return hibernateNow(rest)
	}
	alarm, err := suspend.SetAlarm(cfg.HibernateDelay)
	if err != nil {
		sleepLog(journal.PriErr, sleepStopID, op, fmt.Sprintf("Failed to put system to sleep: %v", err))
		return err
	}
	defer alarm.Close()
	notify("STATUS=Suspended; hibernating through kjump after " + cfg.HibernateDelay.String())
	sleepLog(journal.PriInfo, sleepStartID, "suspend", fmt.Sprintf("Entering sleep state 'suspend'; kjump hibernates the system if it is still asleep after %s (HibernateDelaySec=)...", cfg.HibernateDelay))
	start := bootTime()
	state, err := suspend.Enter(cfg.SuspendStates)
	if err != nil {
		sleepLog(journal.PriErr, sleepStopID, "suspend", fmt.Sprintf("Failed to put system to sleep. System resumed again: %v", err))
		return err
	}
	asleep := bootTime() - start
	slept := asleep.Round(time.Second)
	// The kernel may report the expired timer a moment after user space
	// runs again, and the RTC (whole seconds) may wake the machine just
	// before the delay is up: near the delay, wait a moment for the alarm.
	fired := alarm.Fired() || asleep >= cfg.HibernateDelay
	if !fired && asleep >= cfg.HibernateDelay-alarmSlack {
		fired = alarm.FiredWithin(alarmSlack + time.Second)
	}
	if !fired {
		sleepLog(journal.PriInfo, sleepStopID, "suspend", fmt.Sprintf("System returned from sleep state '%s' after %s, before the hibernation alarm.", state, slept))
		return nil
	}
	sleepLog(journal.PriInfo, sleepStopID, "suspend", fmt.Sprintf("Woken up by the alarm after %s in sleep state '%s': hibernating through kjump.", slept, state))
	return hibernateNow(rest)
}

// hibernateNow is suspend-then-hibernate's hibernation step.
func hibernateNow(rest []string) error {
	sleepLog(journal.PriInfo, sleepStartID, "hibernate", "Entering sleep state 'hibernate' through kjump (kexec jump)...")
	if err := runJump(handoff.Now, rest); err != nil {
		sleepLog(journal.PriErr, sleepStopID, "hibernate", fmt.Sprintf("Failed to put system to sleep. System resumed again: %v", err))
		return err
	}
	sleepLog(journal.PriInfo, sleepStopID, "hibernate", "System returned from sleep state (resumed by kjump).")
	return nil
}

// alarmSlack is how early before HibernateDelaySec= a wake-up may still be
// the alarm's.
const alarmSlack = 2 * time.Second

// bootTime reads CLOCK_BOOTTIME, which counts suspended time too.
func bootTime() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Duration(ts.Nano())
}
