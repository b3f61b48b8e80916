package sleepconf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// logind answers CanHibernate, and accepts Hibernate, from sleep.conf,
// which it reads afresh on every call (systemd's can_sleep() parses the
// configuration each time): AllowHibernation=no makes the answer "no" at
// once, without restarting logind. kjump uses that so CanHibernate tells
// the truth: the package ships a drop-in denying hibernation
// (ShippedDropIn), and 'hibernate check --update-logind' puts one of the
// same name under /run (RuntimeDropIn), which replaces it, allowing
// hibernation only while the check passes. /run is empty after a reboot,
// so a machine hibernation has not yet been checked on is denied.
var (
	ShippedDropIn = "/usr/lib/systemd/sleep.conf.d/kjump.conf"
	RuntimeDropIn = "/run/systemd/sleep.conf.d/kjump.conf"
)

// SetHibernationAllowed writes RuntimeDropIn: allowed leaves sleep.conf's
// own settings in force (the file only masks the shipped denial); denied
// sets AllowHibernation=no and AllowSuspendThenHibernate=no, with why in
// comments for 'systemd-analyze cat-config systemd/sleep.conf'. Hybrid
// sleep stays denied: kjump refuses it.
func SetHibernationAllowed(allowed bool, why []string, now time.Time) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by 'hibernate check --update-logind' at %s.\n", now.UTC().Format(time.RFC3339))
	if allowed {
		b.WriteString("# The check passed: hibernation is allowed (this file replaces\n# " + ShippedDropIn + ", which denies it).\n[Sleep]\nAllowHybridSleep=no\n")
	} else {
		b.WriteString("# The check failed, so logind's CanHibernate answers \"no\":\n")
		for _, w := range why {
			b.WriteString("#   " + strings.ReplaceAll(w, "\n", " ") + "\n")
		}
		b.WriteString("[Sleep]\nAllowHibernation=no\nAllowSuspendThenHibernate=no\nAllowHybridSleep=no\n")
	}
	if err := os.MkdirAll(filepath.Dir(RuntimeDropIn), 0o755); err != nil {
		return err
	}
	tmp := RuntimeDropIn + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, RuntimeDropIn)
}

// HibernationAllowed reads back what the last update decided: false when
// there is no runtime drop-in (not checked since boot) or it denies.
func HibernationAllowed() (allowed, checked bool) {
	b, err := os.ReadFile(RuntimeDropIn)
	if err != nil {
		return false, false
	}
	return !strings.Contains(string(b), "AllowHibernation=no"), true
}
