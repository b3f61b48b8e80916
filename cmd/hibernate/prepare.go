package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/hibernate"
	"github.com/kjump/kjump/internal/prepare"
)

func init() {
	commands.Register(cli.Command{Name: "prepare", Summary: "build the helper initramfs (binary, config, target's kernel modules)", Run: runPrepare})
}

func runPrepare(args []string) error {
	cfg, err := loadConfig(args)
	if err != nil {
		return err
	}
	fs := commands.FlagSet("prepare", "")
	configFlag(fs)
	kernel := fs.String("kernel", cfg.Helper.Kernel, "helper kernel `bzImage` (its release picks /lib/modules/RELEASE)")
	initrd := fs.String("initrd", cfg.Helper.Initrd, "initramfs to write")
	root := fs.String("modules-root", "/", "`directory` holding lib/modules/RELEASE")
	var extra multiFlag
	fs.Var(&extra, "module", "also include kernel module `NAME` (repeatable)")
	force := fs.Bool("force", false, "rebuild even if the initramfs is current")
	if err := commands.ParseNone(fs, args); err != nil {
		return err
	}
	in := prepareInputs(cfg, *kernel, cfg.Targets, configPath(args))
	in.ModulesRoot = *root
	in.Modules = append(in.Modules, extra...)
	_, skipped := hibernate.HelperModules(cfg.Targets)
	for _, s := range skipped {
		fmt.Fprintf(os.Stderr, "hibernate prepare: warning: %s: its kernel modules are not included\n", s)
	}
	res, err := prepare.Build(*initrd, in, *force)
	if err != nil {
		return err
	}
	mods := "no modules (drivers built into the helper kernel)"
	if len(res.Modules) > 0 {
		mods = fmt.Sprintf("%d modules: %s", len(res.Modules), strings.Join(moduleNames(res.Modules), " "))
	}
	if !res.Rebuilt {
		fmt.Printf("%s is current (Linux %s, %s)\n", *initrd, res.Release, mods)
		return nil
	}
	fmt.Printf("wrote %s (%s) for Linux %s: /init, %s; %s\n", *initrd, humanize.IBytes(uint64(res.Size)), res.Release,
		configNote(in.Config, cfg.Path != ""), mods)
	if len(res.Why) > 0 {
		fmt.Printf("rebuilt because %s\n", strings.Join(res.Why, ", "))
	}
	return nil
}

func configNote(path string, exists bool) string {
	if exists {
		return path
	}
	return "no config (defaults)"
}

func moduleNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		b := p[strings.LastIndex(p, "/")+1:]
		out[i] = b[:strings.Index(b+".ko", ".ko")]
	}
	return out
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
