package main

import (
	"fmt"
	"os"

	"github.com/kjump/kjump/internal/bootonce"
	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/config"
	"github.com/kjump/kjump/internal/launch"
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
	if err := bootonce.CheckTarget(target); err != nil {
		return &cli.ExitError{Code: cli.ExitUsage, Err: err}
	}
	if cfg.KeyFile != "" {
		return fmt.Errorf("images are encrypted (key_file in %s): the key is on this system's disks, which a directly started restore kernel cannot read; encrypted images resume through a normal boot", configPath(args))
	}
	sys, err := sysinfo.Read()
	if err != nil {
		return err
	}
	e, err := bootonce.NewEntry(sys, launch.Kernel{Path: cfg.Helper.Kernel, Initrd: cfg.Helper.Initrd, Args: cfg.Helper.Args}, target)
	if err != nil {
		return err
	}
	fmt.Fprint(os.Stdout, e.BLS())
	return nil
}
