// Package kmsg writes lines to the kernel log (/dev/kmsg). Early in boot,
// before the journal runs, that is the one log that survives into the
// journal (journald reads the kernel's buffer when it starts), so resume
// records every outcome there: resumed, nothing to resume, refused and why.
package kmsg

import (
	"fmt"
	"os"
	"strings"
)

// Priorities (syslog levels) a line is written with.
const (
	Err     = 3
	Warning = 4
	Notice  = 5
	Info    = 6
)

// Path is the kernel log device.
var Path = "/dev/kmsg"

// Printf writes one line "<prio>tag: message" to the kernel log, in the
// user facility (the kernel applies it when the prefix names none), so
// the journal shows it with SYSLOG_IDENTIFIER=tag. Long messages are cut
// at the kernel's line limit; newlines become "; ". Errors are returned
// for the caller to ignore: a log that cannot be written must not change
// what resume does.
func Printf(prio int, tag, format string, a ...any) error {
	msg := strings.ReplaceAll(strings.TrimSpace(fmt.Sprintf(format, a...)), "\n", "; ")
	line := fmt.Sprintf("<%d>%s: %s", prio, tag, msg)
	if len(line) > 976 { // LOG_LINE_MAX (1024) less the kernel's prefix
		line = line[:973] + "..."
	}
	f, err := os.OpenFile(Path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write([]byte(line + "\n"))
	return err
}
