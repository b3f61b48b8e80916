package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/cmdline"
	"github.com/kjump/kjump/internal/config"
	"github.com/kjump/kjump/internal/kmsg"
	"github.com/kjump/kjump/internal/resume"
	"github.com/kjump/kjump/internal/secret"
	"github.com/kjump/kjump/internal/status"
	"github.com/kjump/kjump/internal/storage"
)

func init() {
	commands.Default = "run"
	commands.Register(cli.Command{Name: "run", Summary: "resume from a committed image (the default; early boot)", Run: runResume})
}

// runResume resumes, and leaves its outcome where the booted system finds
// it: the kernel log (so the journal has it) and /run/kjump/resume.json
// (for 'hibernate status').
func runResume(args []string) error {
	err := resumeTargets(args)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp), errors.Is(err, cli.ErrDescribed):
	case cli.IsUsage(err):
		outcome(status.Outcome{Result: status.Failed, Detail: cli.Message(err)}, kmsg.Err, "usage error: %s; booting normally", cli.Message(err))
	default:
		outcome(status.Outcome{Result: status.Refused, Detail: cli.Message(err)}, kmsg.Err, "not resumed: %s; booting normally", cli.Message(err))
	}
	return err
}

// outcome records and logs how resume ended. The kernel log line is what
// the journal keeps of a boot that did not resume.
func outcome(o status.Outcome, prio int, format string, a ...any) {
	kmsg.Printf(prio, "kjump-resume", format, a...)
	if os.Geteuid() != 0 {
		return
	}
	o.Command, o.Time = "resume", time.Now().UTC()
	status.Save(status.RunDir, status.Resume, o)
}

func resumeTargets(args []string) error {
	cfg, err := config.LoadArgs(args)
	if err != nil {
		return &cli.ExitError{Code: cli.ExitUsage, Err: err}
	}
	o := resume.Options{Log: func(f string, a ...any) {
		fmt.Fprintf(os.Stderr, "resume: "+f+"\n", a...)
		kmsg.Printf(kmsg.Info, "kjump-resume", f, a...)
	}}
	fs := commands.FlagSet("run", "")
	fs.String("config", config.DefaultPath, "configuration `file` (kjump.conf(5))")
	fs.StringVar(&o.Target, "from", "", "image `target`: raw partition, UUID=, LABEL=, file or NFS path (default: kjump.resume= on the kernel command line, else targets in the config)")
	fs.StringVar(&o.HelperKernel, "kernel", cfg.Helper.Kernel, "restore kernel `bzImage`")
	fs.StringVar(&o.HelperInitrd, "initrd", cfg.Helper.Initrd, "restore kernel `initramfs`")
	fs.StringVar(&o.HelperArgs, "helper-args", cfg.Helper.Args, "extra restore kernel command line")
	fs.BoolVar(&o.Force, "force", cfg.Resume.Force, "restore an image that was invalidated by an earlier resume attempt")
	fs.BoolVar(&o.AllowUnproven, "allow-unproven", cfg.Resume.AllowUnproven || cmdlineSwitch("kjump.allow_unproven"),
		"resume onto filesystems kjump cannot prove unchanged (no journal it reads, external journal, other types); a proven change is refused regardless")
	var kf secret.Flags
	kf.Register(fs)
	if err := commands.ParseTarget(fs, args, "from", &o.Target); err != nil {
		return err
	}
	// kjump.force=1 from the boot menu: retry a restore that did not finish.
	o.Retry = cmdlineSwitch("kjump.force")
	explicit := o.Target != ""
	if !explicit && (cfg.Resume.Policy == "never" || cmdlineHas("kjump.noresume")) {
		msg := fmt.Sprintf("disabled (resume.policy = %q in %s, or kjump.noresume); booting normally", cfg.Resume.Policy, configPath(args))
		fmt.Fprintln(os.Stderr, "resume: "+msg)
		outcome(status.Outcome{Result: status.Disabled, Detail: msg}, kmsg.Notice, "%s", msg)
		return nil
	}
	// Key: options, else kjump.key= on the kernel command line, else
	// key_file in the configuration.
	if !kf.Given() {
		kf.KeyFile = cmdlineArg("kjump.key=")
		if kf.KeyFile == "" {
			kf.KeyFile = cfg.KeyFile
		}
	}
	s, err := kf.Secret(false)
	if err != nil {
		return fmt.Errorf("%w; not resuming, booting normally", err)
	}
	if s != nil {
		defer s.Wipe()
		o.Secret = s
	}
	targets := []string{o.Target}
	if !explicit {
		if t := cmdlineArg("kjump.resume="); t != "" {
			targets = []string{t}
		} else {
			targets = cfg.Targets
		}
	}
	if len(targets) == 0 {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("no image target: give --from, kjump.resume= on the kernel command line, or targets in %s (a raw partition, UUID=, LABEL= or NFS path)", configPath(args))}
	}
	// The first target holding an image decides: an image that fails its
	// checks is never resumed, and an older one elsewhere must not be
	// resumed in its place.
	var why []string
	for _, t := range targets {
		if len(targets) > 1 {
			if _, err := storage.Open(t); err != nil {
				fmt.Fprintf(os.Stderr, "resume: skipping %s: %v\n", t, err)
				why = append(why, cli.Message(err))
				continue
			}
		}
		o.Target = t
		kmsg.Printf(kmsg.Info, "kjump-resume", "looking for an image on %s", t)
		err = resume.Run(o)
		if !errors.Is(err, resume.ErrNothingToResume) {
			return err
		}
		fmt.Fprintf(os.Stderr, "resume: %v\n", err)
		why = append(why, cli.Message(err))
	}
	fmt.Fprintln(os.Stderr, "resume: nothing to resume; booting normally")
	outcome(status.Outcome{Result: status.None, Target: strings.Join(targets, " "), Detail: strings.Join(why, "; ")},
		kmsg.Info, "nothing to resume (%s); booting normally", strings.Join(why, "; "))
	return nil
}

// cmdlineArg returns the value of kjump.resume=TARGET (the way resume=
// names swsusp's partition) or kjump.key=PATH from the kernel command line.
func cmdlineArg(prefix string) string {
	b, _ := os.ReadFile("/proc/cmdline")
	v, _ := cmdline.Value(string(b), strings.TrimSuffix(prefix, "="))
	return v
}

func cmdlineHas(word string) bool {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, p := range cmdline.Params(string(b)) {
		if p[0] == word && p[1] == "" {
			return true
		}
	}
	return false
}

func configPath(args []string) string { return config.PathFromArgs(args) }

// cmdlineSwitch reports whether word is on the kernel command line alone
// or as word=1, word=y or word=true.
func cmdlineSwitch(word string) bool {
	b, _ := os.ReadFile("/proc/cmdline")
	return cmdline.Switch(string(b), word)
}
