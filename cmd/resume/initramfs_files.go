package main

import (
	"fmt"
	"os"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/config"
)

func init() {
	commands.Register(cli.Command{Name: "initramfs-files", Summary: "list the files resume needs in the initramfs (for initramfs-tools and dracut hooks)",
		Run: runInitramfsFiles})
}

// runInitramfsFiles prints, one absolute path a line, what the early-boot
// resume reads besides itself: the configuration, the restore kernel and
// its initramfs, and the key file. The initramfs hooks copy each to the
// same path inside the initramfs, so resume finds them where the
// configuration says. A file that should be there but is not is an error:
// an initramfs built without it could not resume.
func runInitramfsFiles(args []string) error {
	cfg, err := config.LoadArgs(args)
	if err != nil {
		return &cli.ExitError{Code: cli.ExitUsage, Err: err}
	}
	fs := commands.FlagSet("initramfs-files", "")
	fs.String("config", config.DefaultPath, "configuration `file` (kjump.conf(5))")
	if err := commands.ParseNone(fs, args); err != nil {
		return err
	}
	files := []string{}
	if cfg.Path != "" {
		files = append(files, cfg.Path)
	}
	files = append(files, cfg.Helper.Kernel, cfg.Helper.Initrd)
	if cfg.KeyFile != "" {
		files = append(files, cfg.KeyFile)
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%s is missing, so the initramfs could not resume: install the helper kernel there and run 'hibernate prepare' (or fix %s)", f, configPath(args))
		}
		fmt.Println(f)
	}
	return nil
}
