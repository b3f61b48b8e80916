package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/freepages"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/image/progress"
	"github.com/kjump/kjump/internal/secret"
	"github.com/kjump/kjump/internal/storage"
)

func init() {
	commands.Register(cli.Command{
		Name:        "image",
		Summary:     "offline image tools: 'image create' saves an ELF core file as an image",
		Subcommands: []string{"create"},
		Run:         runImage,
	})
}

func runImage(args []string) error {
	const usage = "usage: hibernate image create --from CORE.elf --to TARGET [--level fastest|fast|default|best] [--threads N] [--key-file F | --passphrase-file F | --passphrase]"
	if len(args) == 0 {
		return cli.Usagef("missing subcommand: use 'image create'")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Println(usage)
		return flag.ErrHelp
	}
	if args[0] != "create" {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("unknown image subcommand %q: use 'image create'", args[0])}
	}
	return imageCreate(args[1:])
}

func imageCreate(args []string) error {
	fs := commands.FlagSet("image create", "--from CORE.elf --to TARGET")
	from := fs.String("from", "", "ELF core file with the memory to save (/proc/vmcore, kdump, QEMU dump-guest-memory)")
	to := fs.String("to", "", "target: file, directory, /dev/ block device, UUID=, LABEL=, PARTUUID= or PARTLABEL=")
	level := fs.String("level", "fast", "compression level: fastest, fast, default or best")
	compression := fs.String("compression", "auto", "codec: auto (zstd while the target limits, s2 while the CPUs do), zstd, or s2 (faster, larger)")
	threads := fs.Int("threads", 0, fmt.Sprintf("compression workers (0: one per CPU, at most %d)", image.MaxThreads))
	release := fs.String("kernel-release", "", "kernel release to record (default: the core's VMCOREINFO OSRELEASE)")
	hostname := fs.String("hostname", "", "hostname to record")
	bootID := fs.String("boot-id", "", "boot id to record")
	excludeFree := fs.Bool("exclude-free", false, "leave out the pages the dumped kernel had free in its buddy allocator (restored as zeros; needs the core's VMCOREINFO note)")
	var kf secret.Flags
	kf.Register(fs)
	if err := commands.ParseNone(fs, args); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return cli.Usagef("need --from CORE.elf and --to TARGET")
	}
	lvl, err := image.ParseLevel(*level)
	if err != nil {
		return &cli.ExitError{Code: 2, Err: err}
	}
	codec, err := image.ParseCompression(*compression)
	if err != nil {
		return &cli.ExitError{Code: 2, Err: err}
	}
	f, err := os.Open(*from)
	if err != nil {
		return err
	}
	defer f.Close()
	src, err := image.OpenELF(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *from, err)
	}
	defer src.Close()
	md := image.Metadata{KernelRelease: *release, Hostname: *hostname, BootID: *bootID}
	if md.KernelRelease == "" {
		md.KernelRelease = src.VMCoreInfo()["OSRELEASE"]
	}
	t, err := storage.Open(*to)
	if err != nil {
		return err
	}
	opts := []image.WriterOption{image.WithLevel(lvl), image.WithCompression(codec), image.WithThreads(*threads)}
	if *excludeFree {
		start := time.Now()
		free, err := freepages.Find(src, src.VMCoreInfo(), src.Ranges())
		if err != nil {
			return fmt.Errorf("%s: cannot find the free pages: %w (QEMU's dump-guest-memory adds the note only for guests that pass it through fw_cfg; drop --exclude-free to save every page)", *from, err)
		}
		fmt.Printf("free pages: %s in %d ranges, found in %s\n", humanize.IBytes(free.Pages*4096), len(free.Free), time.Since(start).Round(time.Millisecond))
		opts = append(opts, image.WithExclude(free.Free))
	}
	key, err := newKey(&kf)
	if err != nil {
		return err
	}
	if key != nil {
		defer key.Wipe()
		opts = append(opts, image.WithKey(key))
	}
	ctx := commands.Context() // Ctrl-C: stop and clean up, reported as "interrupted"
	m := progress.New("saving")
	st, err := image.WriteTarget(ctx, t, src, md, append(opts, image.WithProgress(m.Update))...)
	m.Done()
	if err != nil {
		return err
	}
	secs := max(st.Duration.Seconds(), 1e-9)
	pages := st.ZeroPages + st.StoredPages
	fmt.Printf("saved %s of RAM to %s: %s image (%.2fx), %s, %.1f%% zero pages, %s in %s (%s/s)\n",
		humanize.IBytes(st.RAMBytes), t, humanize.IBytes(st.ImageBytes), float64(st.RAMBytes)/float64(max(st.ImageBytes, 1)),
		st.CodecMix(), 100*float64(st.ZeroPages)/float64(max(pages, 1)), "level "+lvl.String(),
		st.Duration.Round(time.Millisecond), humanize.IBytes(uint64(float64(st.RAMBytes)/secs)))
	return nil
}
