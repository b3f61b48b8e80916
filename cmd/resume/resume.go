package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/cmdline"
	"github.com/kjump/kjump/internal/config"
	"github.com/kjump/kjump/internal/resume"
	"github.com/kjump/kjump/internal/secret"
	"github.com/kjump/kjump/internal/storage"
)

func init() {
	commands.Default = "run"
	commands.Register(cli.Command{Name: "run", Summary: "resume from a committed image (the default; early boot)", Run: runResume})
}

func runResume(args []string) error {
	cfg, err := config.Load(configPath(args))
	if err != nil {
		return &cli.ExitError{Code: 2, Err: err}
	}
	o := resume.Options{Log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "resume: "+f+"\n", a...) }}
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	// kjump.force=1 from the boot menu: retry a restore that did not finish.
	o.Retry = cmdlineSwitch("kjump.force")
	explicit := o.Target != ""
	if !explicit && (cfg.Resume.Policy == "never" || cmdlineHas("kjump.noresume")) {
		fmt.Fprintf(os.Stderr, "resume: disabled (resume.policy = %q in %s, or kjump.noresume); booting normally\n", cfg.Resume.Policy, configPath(args))
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
	for _, t := range targets {
		if len(targets) > 1 {
			if _, err := storage.Open(t); err != nil {
				fmt.Fprintf(os.Stderr, "resume: skipping %s: %v\n", t, err)
				continue
			}
		}
		o.Target = t
		err = resume.Run(o)
		if !errors.Is(err, resume.ErrNothingToResume) {
			return err
		}
		fmt.Fprintf(os.Stderr, "resume: %v\n", err)
	}
	fmt.Fprintln(os.Stderr, "resume: nothing to resume; booting normally")
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
	on := false
	for _, p := range cmdline.Params(string(b)) {
		if p[0] == word {
			switch p[1] {
			case "", "1", "y", "yes", "true":
				on = true
			default:
				on = false
			}
		}
	}
	return on
}
