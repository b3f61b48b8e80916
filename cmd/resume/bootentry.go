package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/config"
	"github.com/kjump/kjump/internal/launch"
	"github.com/kjump/kjump/internal/layout"
	"github.com/kjump/kjump/internal/storage"
	"github.com/kjump/kjump/internal/sysinfo"
)

func init() {
	commands.Register(cli.Command{Name: "boot-entry", Summary: "print the boot loader entry that restores an image directly, without a normal boot first", Run: bootEntry})
}

// bootEntry prints, in Boot Loader Specification form, the entry a boot
// loader starts to restore an image on this machine directly: the helper
// kernel and initramfs, confined to the reserved region by their command
// line (see layout.DirectArgs), resuming from the target.
func bootEntry(args []string) error {
	cfg, err := config.LoadArgs(args)
	if err != nil {
		return &cli.ExitError{Code: cli.ExitUsage, Err: err}
	}
	var target string
	fs := commands.FlagSet("boot-entry", "")
	fs.String("config", config.DefaultPath, "configuration `file` (kjump.conf(5))")
	fs.StringVar(&target, "from", "", "image `target`: raw partition, PARTUUID=, UUID=, LABEL= or DEVICE:/path (default: the first target in the config)")
	if err := commands.ParseTarget(fs, args, "from", &target); err != nil {
		return err
	}
	if target == "" && len(cfg.Targets) > 0 {
		target = cfg.Targets[0]
	}
	if target == "" {
		return &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("no image target: give --from or targets in %s", configPath(args))}
	}
	if err := directTarget(target); err != nil {
		return err
	}
	if cfg.KeyFile != "" {
		return fmt.Errorf("images are encrypted (key_file in %s): the key is on this system's disks, which a directly started restore kernel cannot read; encrypted images resume through a normal boot", configPath(args))
	}
	sys, err := sysinfo.Read()
	if err != nil {
		return err
	}
	k := launch.Kernel{Path: cfg.Helper.Kernel, Initrd: cfg.Helper.Initrd, Args: cfg.Helper.Args}
	// The restore kernel's own plan proves the kernel and initramfs fit
	// the region, as for a kexec'd restore.
	plan, err := launch.Plan(sys, k, true)
	if err != nil {
		return err
	}
	confine, err := layout.DirectArgs(sys.Firmware, plan.Region())
	if err != nil {
		return err
	}
	options := strings.Fields(launch.Cmdline(sys.Cmdline) + " " + k.Args)
	options = append(options, confine...)
	// A panic (out of memory, a driver) reboots into the normal boot
	// rather than hanging: the one-shot entry is spent by then.
	options = append(options, "panic=-1", "kjump.resume="+target)
	fmt.Fprintf(os.Stdout, "linux %s\ninitrd %s\noptions %s\n", k.Path, k.Initrd, strings.Join(options, " "))
	return nil
}

// directTarget refuses targets a restore kernel without the system's
// mounts and network cannot reach.
func directTarget(target string) error {
	ps, err := storage.ParseSpec(target)
	if err != nil {
		return &cli.ExitError{Code: cli.ExitUsage, Err: err}
	}
	if ps.Tag != "" || strings.HasPrefix(ps.Value, "/dev/") {
		return nil
	}
	return &cli.ExitError{Code: cli.ExitUsage, Err: fmt.Errorf("target %s: a directly started restore kernel reads a raw partition (/dev/..., PARTUUID=, UUID=, LABEL=) or a file named as DEVICE:/path, not a path on a mounted filesystem or NFS; such images resume through a normal boot", target)}
}
