package resume

import "github.com/kjump/kjump/internal/cmdline"

// TargetFromCmdline returns the value of the last kjump.resume= on the
// kernel command line, or "" when there is none.
func TargetFromCmdline(line string) string {
	v, _ := cmdline.Value(line, "kjump.resume")
	return v
}
