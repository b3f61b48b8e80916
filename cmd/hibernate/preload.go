package main

import (
	"fmt"
	"os"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/hibernate"
)

func init() {
	commands.Register(cli.Command{Name: "preload", Summary: "load the helper now so that hibernating starts at once (kjump-preload.service)", Run: runPreload})
}

func runPreload(args []string) error {
	cfg, err := loadConfig(args)
	if err != nil {
		return err
	}
	o := hibernate.Options{Mode: handoff.Now}
	fs := commands.FlagSet("preload", "")
	helperFlags(fs, &o, cfg)
	unload := fs.Bool("unload", false, "unload a preloaded helper instead")
	if err := commands.ParseNone(fs, args); err != nil {
		return err
	}
	release, err := lockKjump("hibernate preload")
	if err != nil {
		return err
	}
	defer release()
	if *unload {
		if err := hibernate.Unpreload(); err != nil {
			return err
		}
		fmt.Println("hibernate: preloaded helper unloaded")
		return nil
	}
	plan, err := hibernate.Preload(o)
	if err != nil {
		return fmt.Errorf("not preloaded: %w", err)
	}
	fmt.Fprintf(os.Stdout, "hibernate: helper preloaded (%s, %s) into region %v; hibernate jumps to it while kexec_load_limit_reboot shows no other kexec load\n",
		o.HelperKernel, o.HelperInitrd, plan.Tail)
	return nil
}
