package main

import (
	"flag"
	"os"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/config"
	"github.com/kjump/kjump/internal/hibernate"
	"github.com/kjump/kjump/internal/prepare"
)

// loadConfig reads the file named by --config (default /etc/kjump.conf)
// before the flags are parsed: its values become the flags' defaults, so
// an option on the command line overrides the file.
func loadConfig(args []string) (config.Config, error) {
	cfg, err := config.LoadArgs(args)
	if err != nil {
		return cfg, &cli.ExitError{Code: cli.ExitUsage, Err: err}
	}
	return cfg, nil
}

func configPath(args []string) string { return config.PathFromArgs(args) }

func configFlag(fs *flag.FlagSet) {
	fs.String("config", config.DefaultPath, "configuration `file` (kjump.conf(5))")
}

// checkOptions turns the configuration and the chosen targets into what
// hibernate.Check judges.
func checkOptions(cfg config.Config, o hibernate.Options, targets []string, cfgPath string) hibernate.CheckOptions {
	reserve, _ := cfg.ReserveBytes() // validated by config.Parse
	return hibernate.CheckOptions{Targets: targets, HelperKernel: o.HelperKernel, HelperInitrd: o.HelperInitrd,
		Reserve: reserve, KeyFile: cfg.KeyFile, Prepare: prepareInputs(cfg, o.HelperKernel, cfg.Targets, cfgPath),
		Direct: cfg.Resume.DirectRestore()}
}

// prepareInputs is what the helper initramfs is built from.
func prepareInputs(cfg config.Config, kernel string, targets []string, cfgPath string) prepare.Inputs {
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	mods, _ := hibernate.HelperModules(targets)
	return prepare.Inputs{Binary: self, Config: cfgPath, Kernel: kernel, ModulesRoot: "/",
		Modules: append(mods, cfg.Helper.Modules...)}
}
