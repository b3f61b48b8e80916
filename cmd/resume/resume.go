package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/resume"
)

func init() {
	commands.Default = "run"
	commands.Register(cli.Command{Name: "run", Summary: "resume from a committed image (the default; early boot)", Run: runResume})
}

func runResume(args []string) error {
	o := resume.Options{Log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "resume: "+f+"\n", a...) }}
	fs := commands.FlagSet("run", "")
	fs.StringVar(&o.Target, "from", "", "image `target`: raw partition, UUID=, LABEL=, file or NFS path")
	fs.StringVar(&o.HelperKernel, "kernel", "/boot/kjump/helper.bzImage", "restore kernel `bzImage`")
	fs.StringVar(&o.HelperInitrd, "initrd", "/boot/kjump/helper.cpio.gz", "restore kernel `initramfs`")
	fs.StringVar(&o.HelperArgs, "helper-args", "", "extra restore kernel command line")
	fs.BoolVar(&o.Force, "force", false, "restore an image that was invalidated by an earlier resume attempt")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Target == "" {
		o.Target = cmdlineTarget()
	}
	if o.Target == "" {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("no image target: give --from or kjump.resume= on the kernel command line (a raw partition, UUID=, LABEL= or NFS path)")}
	}
	err := resume.Run(o)
	if errors.Is(err, resume.ErrNothingToResume) {
		fmt.Fprintf(os.Stderr, "resume: %v; booting normally\n", err)
		return nil
	}
	return err
}

// cmdlineTarget returns kjump.resume=TARGET from the kernel command line,
// the way resume= names swsusp's partition.
func cmdlineTarget() string {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, a := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(a, "kjump.resume="); ok {
			return v
		}
	}
	return ""
}
