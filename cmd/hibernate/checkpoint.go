package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/dustin/go-humanize"

	"github.com/kjump/kjump/internal/bootonce"
	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/config"
	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/hibernate"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/secret"
	"github.com/kjump/kjump/internal/status"
)

func init() {
	commands.Register(cli.Command{Name: "checkpoint", Summary: "save the machine and keep running (jump to the helper and back)",
		Run: func(args []string) error { return runJump(handoff.Checkpoint, args) }})
}

// helperFlags are the options every jumping command shares; their
// defaults come from /etc/kjump.conf.
func helperFlags(fs *flag.FlagSet, o *hibernate.Options, cfg config.Config) {
	configFlag(fs)
	fs.StringVar(&o.HelperKernel, "kernel", cfg.Helper.Kernel, "helper kernel `bzImage`")
	fs.StringVar(&o.HelperInitrd, "initrd", cfg.Helper.Initrd, "helper `initramfs` (from 'hibernate prepare')")
	fs.StringVar(&o.HelperArgs, "helper-args", cfg.Helper.Args, "extra helper kernel command line")
	fs.StringVar(&o.Target, "to", "", "image `target`: block device, UUID=, LABEL=, NFS path (default: first reachable of targets in the config)")
	o.Level, o.Compression = cfg.Image.Level, cfg.Image.Compression
	fs.Func("level", fmt.Sprintf("compression level: fastest, fast, default or best (default %s)", o.Level), func(v string) error {
		_, err := image.ParseLevel(v)
		o.Level = v
		return err
	})
	fs.Func("compression", fmt.Sprintf("codec: auto (per chunk: zstd while the target limits the capture, s2 while the CPUs do), zstd or s2 (default %s)", o.Compression), func(v string) error {
		_, err := image.ParseCompression(v)
		o.Compression = v
		return err
	})
	fs.IntVar(&o.Threads, "threads", cfg.Image.Threads, "compression threads in the helper (0: all CPUs)")
	o.KeepFree = cfg.Image.FreePages == "keep"
	fs.Func("free-pages", "exclude (default: leave out the pages the kernel has free) or keep", func(v string) error {
		switch v {
		case "exclude", "keep":
			o.KeepFree = v == "keep"
			return nil
		}
		return fmt.Errorf("use exclude or keep")
	})
	o.NetInterface, o.NetAddress = cfg.Network.Interface, cfg.Network.Address
	o.Watchdog = cfg.Helper.Watchdog
	fs.DurationVar(&lockWait, "lock-wait", hibernate.DefaultLockWait, lockWaitUsage())
	o.AllowUnproven = cfg.Resume.AllowUnproven
}

// jumpArgs parses the arguments of now and checkpoint: options anywhere,
// and one optional TARGET, the same as --to.
func jumpArgs(mode handoff.Mode, args []string) (hibernate.Options, config.Config, *secret.Flags, error) {
	o := hibernate.Options{Mode: mode, Log: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "hibernate: "+f+"\n", a...) }}
	cfg, err := loadConfig(args)
	if err != nil {
		return o, cfg, nil, err
	}
	fs := commands.FlagSet(string(mode), "[TARGET]")
	helperFlags(fs, &o, cfg)
	var kf secret.Flags
	kf.Register(fs)
	if err := commands.ParseTarget(fs, args, "to", &o.Target); err != nil {
		return o, cfg, nil, err
	}
	if !kf.Given() {
		kf.KeyFile = cfg.KeyFile // key_file in /etc/kjump.conf
	}
	return o, cfg, &kf, nil
}

func runJump(mode handoff.Mode, args []string) error {
	o, cfg, kf, err := jumpArgs(mode, args)
	if err != nil {
		return err
	}
	release, err := lockKjump("hibernate " + string(mode))
	if err != nil {
		return err
	}
	defer release()
	// Every prerequisite first: a refusal changes nothing.
	targets := cfg.Targets
	if o.Target != "" {
		targets = []string{o.Target}
	}
	co := checkOptions(cfg, o, targets, configPath(args))
	co.TargetOptional = mode == handoff.Checkpoint
	co.Encrypted = kf.Given()
	rep := hibernate.Check(co)
	cmd := "hibernate " + string(mode)
	if !rep.OK {
		printReport(os.Stderr, rep, true)
		err := fmt.Errorf("refused: %s (run 'hibernate check' for every prerequisite); nothing was changed", failures(rep))
		recordOutcome(status.Outcome{Command: cmd, Result: status.Refused, Target: orNone(o.Target), Detail: failureDetails(rep)}, err.Error())
		return err
	}
	printReport(os.Stderr, rep, false)
	o.Target, o.System = rep.Target, rep.System
	if mode == handoff.Now && cfg.Resume.DirectRestore() {
		o.BootOnce = bootonce.FindGRUB("/")
	}
	key, err := newKey(kf)
	if err != nil {
		return err
	}
	if key != nil {
		o.Key = key
		defer key.Wipe()
		o.Log("image will be encrypted (AES-256-GCM, %s)", key.Source)
	}
	journalf(journal.PriInfo, "%s to %s: jumping to the helper kernel", cmd, orNone(o.Target))
	out, err := hibernate.Jump(o)
	if err != nil {
		recordOutcome(status.Outcome{Command: cmd, Result: status.Failed, Target: orNone(o.Target), Detail: cli.Message(err)}, cmd+" failed: "+cli.Message(err))
		return err
	}
	r := out.Result
	rec := status.Outcome{Command: cmd, Target: r.Details["target"], ImageID: r.Details["image_id"], Figures: map[string]string{
		"ram_bytes": strconv.FormatUint(r.RAMBytes, 10), "helper_seconds": strconv.FormatFloat(r.Seconds, 'f', 2, 64),
		"away": out.Away.Round(time.Millisecond).String()}}
	var msg string
	switch {
	case r.Mode == handoff.Resumed:
		msg = fmt.Sprintf("RESUMED from image %s on %s (hibernated at %s, away %s); restore kernel wrote %s in %.2fs",
			r.Details["image_id"], r.Details["target"], r.Details["hibernated_at"], out.Away.Round(time.Second),
			humanize.IBytes(r.RAMBytes), r.Seconds)
		rec.Result, rec.Figures["hibernated_at"] = status.Resumed, r.Details["hibernated_at"]
	case r.ImageBytes > 0:
		msg = fmt.Sprintf("checkpoint committed to %s: %s of RAM in a %s image; helper (%d CPUs) took %.2fs; back after %s",
			r.Details["target"], humanize.IBytes(r.RAMBytes), humanize.IBytes(r.ImageBytes), r.CPUs, r.Seconds,
			out.Away.Round(time.Millisecond))
		rec.Result, rec.Figures["image_bytes"] = status.Committed, strconv.FormatUint(r.ImageBytes, 10)
	default:
		msg = fmt.Sprintf("back after %s: helper (%d CPUs) read %s of RAM in %.2fs",
			out.Away.Round(time.Millisecond), r.CPUs, humanize.IBytes(r.RAMBytes), r.Seconds)
		rec.Result = status.Sampled
	}
	fmt.Println("hibernate: " + msg)
	recordOutcome(rec, msg)
	keys := make([]string, 0, len(r.Details))
	for k := range r.Details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("hibernate: helper %s=%s\n", k, r.Details[k])
	}
	return nil
}

// newKey reads the secret the key flags name and derives a fresh key for a
// new image (nil: no encryption). The secret itself is wiped at once.
func newKey(kf *secret.Flags) (*image.Key, error) {
	s, err := kf.Secret(true)
	if err != nil || s == nil {
		return nil, err
	}
	defer s.Wipe()
	return image.NewKey(*s)
}
