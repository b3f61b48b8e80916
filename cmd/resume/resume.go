package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/resume"
	"github.com/kjump/kjump/internal/secret"
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
	var kf secret.Flags
	kf.Register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !kf.Given() {
		kf.KeyFile = cmdlineArg("kjump.key=")
	}
	s, err := kf.Secret(false)
	if err != nil {
		return fmt.Errorf("%w; not resuming, booting normally", err)
	}
	if s != nil {
		defer s.Wipe()
		o.Secret = s
	}
	if o.Target == "" {
		o.Target = cmdlineArg("kjump.resume=")
	}
	if o.Target == "" {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("no image target: give --from or kjump.resume= on the kernel command line (a raw partition, UUID=, LABEL= or NFS path)")}
	}
	err = resume.Run(o)
	if errors.Is(err, resume.ErrNothingToResume) {
		fmt.Fprintf(os.Stderr, "resume: %v; booting normally\n", err)
		return nil
	}
	return err
}

// cmdlineArg returns the value of kjump.resume=TARGET (the way resume=
// names swsusp's partition) or kjump.key=PATH from the kernel command line.
func cmdlineArg(prefix string) string {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, a := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(a, prefix); ok {
			return v
		}
	}
	return ""
}
