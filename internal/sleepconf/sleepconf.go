// Package sleepconf reads the settings of systemd-sleep.conf(5) that kjump
// honours when it stands in for systemd-sleep: HibernateDelaySec= and
// SuspendState=, from /etc/systemd/sleep.conf and its drop-in directories,
// later files overriding earlier ones as systemd merges them.
package sleepconf

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config is what kjump uses of sleep.conf.
type Config struct {
	// HibernateDelay is how long suspend-then-hibernate stays suspended
	// before it hibernates.
	HibernateDelay time.Duration
	// SuspendStates are the /sys/power/state words to try, in order.
	SuspendStates []string
	// Files lists the files read, for messages.
	Files []string
}

// DefaultHibernateDelay is used when HibernateDelaySec= is unset (systemd
// before 252 defaulted to 2 h; 252 estimates from the battery, which kjump
// does not do).
const DefaultHibernateDelay = 2 * time.Hour

// Dirs are searched for sleep.conf.d drop-ins, lowest priority first.
var Dirs = []string{"/usr/lib/systemd", "/lib/systemd", "/usr/local/lib/systemd", "/run/systemd", "/etc/systemd"}

// MainFile is the main configuration file.
var MainFile = "/etc/systemd/sleep.conf"

// Read merges sleep.conf and every sleep.conf.d/*.conf: the main file
// first, then the drop-ins sorted by file name (a name in a later
// directory of Dirs replaces the same name in an earlier one).
func Read() (Config, error) {
	c := Config{HibernateDelay: DefaultHibernateDelay, SuspendStates: []string{"mem", "standby", "freeze"}}
	files := []string{MainFile}
	byName := map[string]string{}
	for _, d := range Dirs {
		ms, _ := filepath.Glob(filepath.Join(d, "sleep.conf.d", "*.conf"))
		for _, m := range ms {
			byName[filepath.Base(m)] = m
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		files = append(files, byName[n])
	}
	for _, f := range files {
		if err := c.readFile(f); err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return c, err
		}
		c.Files = append(c.Files, f)
	}
	return c, nil
}

func (c *Config) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || section != "Sleep" {
			continue
		}
		val = strings.TrimSpace(val)
		switch strings.TrimSpace(key) {
		case "HibernateDelaySec":
			d, err := ParseTimespan(val)
			if err != nil {
				return fmt.Errorf("%s:%d: HibernateDelaySec=%s: %w", path, n, val, err)
			}
			if val == "" {
				d = DefaultHibernateDelay
			}
			c.HibernateDelay = d
		case "SuspendState":
			if val != "" {
				c.SuspendStates = strings.Fields(val)
			}
		}
	}
	return sc.Err()
}

// ParseTimespan parses a systemd time span ("20s", "1h 30min", "90"
// seconds); see systemd.time(7).
func ParseTimespan(s string) (time.Duration, error) {
	units := map[string]time.Duration{
		"us": time.Microsecond, "usec": time.Microsecond, "ms": time.Millisecond, "msec": time.Millisecond,
		"": time.Second, "s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
		"h": time.Hour, "hr": time.Hour, "hour": time.Hour, "hours": time.Hour,
		"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
		"w": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
	}
	var total time.Duration
	rest := strings.TrimSpace(s)
	if rest == "" {
		return 0, nil
	}
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("not a time span (e.g. 30min, 2h, 1h 30min)")
		}
		num, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("not a time span: %w", err)
		}
		rest = strings.TrimLeft(rest[i:], " ")
		j := 0
		for j < len(rest) && (rest[j] >= 'a' && rest[j] <= 'z') {
			j++
		}
		unit, ok := units[rest[:j]]
		if !ok {
			return 0, fmt.Errorf("unknown time unit %q (use s, min, h, d)", rest[:j])
		}
		total += time.Duration(num * float64(unit))
		rest = strings.TrimLeft(rest[j:], " ")
	}
	return total, nil
}
