package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/prepare"
	"github.com/kjump/kjump/internal/setup"
)

func init() {
	commands.Register(cli.Command{Name: "setup", Summary: "set this machine up for kjump: reservation in the boot loader, helper kernel and initramfs, units (--dry-run, --undo)",
		Run: func(args []string) error { return setupMain(args, os.Stdout) }})
}

// setupMain is 'hibernate setup [--dry-run] [--undo]' (internal/setup).
// Usage errors are *cli.ExitError with code 2.
func setupMain(args []string, stdout io.Writer) error {
	cfg, err := loadConfig(args)
	if err != nil {
		return &cli.ExitError{Code: 2, Err: err}
	}
	fs := commands.FlagSet("setup", "")
	configFlag(fs)
	dry := fs.Bool("dry-run", false, "list every file setup would change, and change nothing")
	undo := fs.Bool("undo", false, "put back every file an earlier setup changed (its manifest is in "+setup.StateDir+")")
	// commands.ParseNone, not fs.Parse: help goes to stdout, and shell
	// completion (which runs each command until it parses, to learn its
	// options) stops here instead of running setup.
	if err := commands.ParseNone(fs, args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("must run as root: setup reads /proc/iomem's addresses and writes /etc and /boot (try sudo)")
	}
	release, err := lockKjump("hibernate setup")
	if err != nil {
		return err
	}
	defer release()
	reserve, _ := cfg.ReserveBytes() // validated by config.Parse
	in := prepareInputs(cfg, cfg.Helper.Kernel, cfg.Targets, configPath(args))
	o := setup.Options{
		Root: "/", DryRun: *dry, Out: stdout,
		Ctx:          commands.Context(), // Ctrl-C: the running step finishes and is recorded
		HelperKernel: cfg.Helper.Kernel, HelperInitrd: cfg.Helper.Initrd, MinReserve: reserve,
		Binary: in.Binary, Targets: cfg.Targets, CPUs: cfg.Image.Threads, // 0: one worker per CPU
		Prepare: func() (string, error) {
			res, err := prepare.Build(cfg.Helper.Initrd, in, false)
			if err != nil {
				return "", err
			}
			if !res.Rebuilt {
				return fmt.Sprintf("%s is current (Linux %s)", cfg.Helper.Initrd, res.Release), nil
			}
			mods := "no modules (drivers built into the helper kernel)"
			if len(res.Modules) > 0 {
				mods = fmt.Sprintf("%d modules: %s", len(res.Modules), strings.Join(moduleNames(res.Modules), " "))
			}
			return fmt.Sprintf("wrote %s (%s) for Linux %s; %s", cfg.Helper.Initrd, humanize.IBytes(uint64(res.Size)), res.Release, mods), nil
		},
		PrepareNeeded: func() bool {
			why, err := prepare.Stale(cfg.Helper.Initrd, in)
			return err != nil || len(why) > 0
		},
	}
	if *undo {
		return setup.Undo(o)
	}
	err = setup.Setup(o)
	if errors.Is(err, context.Canceled) {
		// Main says only "interrupted": say where, and how to go back.
		fmt.Fprintf(stdout, "stopped: %s\n", cli.Message(err))
	}
	return err
}
