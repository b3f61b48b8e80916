package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/image/progress"
	"github.com/kjump/kjump/internal/secret"
	"github.com/kjump/kjump/internal/storage"
)

func init() {
	commands.Register(cli.Command{
		Name:        "image",
		Summary:     "inspect images offline: image info|verify|restore TARGET",
		Subcommands: []string{"info", "verify", "restore"},
		Run:         runImage,
	})
}

const imageUsage = `usage:
  resume image info TARGET [--json]
  resume image verify TARGET [--force]          exit 0 only if the image is fully valid
  resume image restore TARGET --to-file OUT [--format elf|raw] [--force] [--threads N]
encrypted images: add --key-file F, --passphrase-file F or --passphrase (info works without)
exit status: 0 valid, 1 error or corrupt, 2 usage, 3 not committed, 4 invalidated, 5 no such target`

func runImage(args []string) error {
	if len(args) == 0 {
		return cli.Usagef("missing subcommand: info, verify or restore")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Println(imageUsage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "info":
		return imageInfo(args[1:])
	case "verify":
		return imageVerify(args[1:])
	case "restore":
		return imageRestore(args[1:])
	}
	return cli.Usagef("unknown image subcommand %q: use info, verify or restore", args[0])
}

// imageParse parses flags before and after the single TARGET argument.
func imageParse(fs *flag.FlagSet, args []string) (string, error) {
	pos, err := commands.Parse(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", cli.Usagef("need exactly one TARGET, got %d", len(pos))
	}
	return pos[0], nil
}

// imageExit maps image states to the documented exit codes.
func imageExit(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, image.ErrNotCommitted):
		return &cli.ExitError{Code: 3, Err: err}
	case errors.Is(err, image.ErrInvalidated):
		return &cli.ExitError{Code: 4, Err: err}
	}
	return err
}

func imageOpen(spec string, kf *secret.Flags) (*image.Reader, storage.Target, error) {
	s, err := kf.Secret(false)
	if err != nil {
		return nil, nil, err
	}
	var opts []image.ReaderOption
	if s != nil {
		defer s.Wipe()
		opts = append(opts, image.WithSecret(*s))
	}
	t, err := openInspect(spec)
	if err != nil {
		return nil, nil, err
	}
	r, err := image.OpenTarget(t, opts...)
	if err != nil {
		return nil, nil, imageExit(err) // names the target already
	}
	return r, t, nil
}

func imageInfo(args []string) error {
	fs := commands.FlagSet("image info", "TARGET")
	asJSON := fs.Bool("json", false, "print JSON")
	var kf secret.Flags
	kf.Register(fs)
	spec, err := imageParse(fs, args)
	if err == nil {
		err = printInfo(spec, &kf, *asJSON)
	}
	if err != nil && *asJSON && !errors.Is(err, flag.ErrHelp) {
		cli.WriteJSONError(os.Stdout, err)
	}
	return err
}

func printInfo(spec string, kf *secret.Flags, asJSON bool) error {
	r, t, err := imageOpen(spec, kf)
	if err != nil {
		return err
	}
	defer r.Close()
	info := r.Info()
	if asJSON {
		e := json.NewEncoder(os.Stdout)
		e.SetIndent("", "  ")
		return e.Encode(info)
	}
	md := info.Metadata
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	pages := info.StoredPages + info.ZeroPages
	fmt.Fprintf(w, "target:\t%s\n", t)
	fmt.Fprintf(w, "status:\t%s\n", info.Status)
	fmt.Fprintf(w, "format:\t%s, id %s\n", info.Version, info.ID)
	fmt.Fprintf(w, "encryption:\t%s\n", orDash(info.Encryption))
	fmt.Fprintf(w, "kernel:\t%s\n", orDash(md.KernelRelease))
	fmt.Fprintf(w, "hostname:\t%s\n", orDash(md.Hostname))
	fmt.Fprintf(w, "boot id:\t%s\n", orDash(md.BootID))
	fmt.Fprintf(w, "created:\t%s\n", info.Created.Format(time.RFC3339))
	fmt.Fprintf(w, "RAM:\t%s in %d ranges, %d-byte pages\n", humanize.IBytes(info.RAMBytes), len(info.Ranges), info.PageSize)
	if pages > 0 {
		fmt.Fprintf(w, "pages:\t%d stored, %d zero (%.1f%%)\n", info.StoredPages, info.ZeroPages, 100*float64(info.ZeroPages)/float64(pages))
		if md.FreePages > 0 {
			fmt.Fprintf(w, "free pages:\t%d of the zero pages were free in the saved kernel, left out unread (%s)\n", md.FreePages, humanize.IBytes(md.FreePages*uint64(info.PageSize)))
		}
	}
	codec := info.Compression.String() + "-compressed"
	if info.Compression == image.Auto {
		codec = "zstd- or s2-compressed as the writer chose (resume image verify counts them)"
	}
	fmt.Fprintf(w, "chunks:\t%d of %s RAM each, %s\n", info.Chunks, humanize.IBytes(uint64(info.ChunkSize)), codec)
	fmt.Fprintf(w, "image size:\t%s (%.2fx)\n", humanize.IBytes(uint64(info.ImageBytes)), float64(info.RAMBytes)/float64(max(info.ImageBytes, 1)))
	fmt.Fprintf(w, "jump back:\tentry %#x, GDT %#x/%#x, flags %#x\n", md.JumpBack.Entry, md.JumpBack.GDTBase, md.JumpBack.GDTLimit, md.JumpBack.Flags)
	for _, f := range md.Filesystems {
		fmt.Fprintf(w, "filesystem:\t%s %s uuid %s generation %s\n", f.Device, f.Type, f.UUID, f.Generation)
	}
	rs := make([]string, len(info.Ranges))
	for i, rg := range info.Ranges {
		rs[i] = rg.String()
	}
	fmt.Fprintf(w, "ranges:\t%s\n", strings.Join(rs, " "))
	return w.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func imageVerify(args []string) error {
	fs := commands.FlagSet("image verify", "TARGET")
	force := fs.Bool("force", false, "accept an invalidated image whose data is intact")
	threads := fs.Int("threads", 0, "decompression workers (0: one per CPU)")
	var kf secret.Flags
	kf.Register(fs)
	spec, err := imageParse(fs, args)
	if err != nil {
		return err
	}
	r, t, err := imageOpen(spec, &kf)
	if err != nil {
		return err
	}
	defer r.Close()
	opts := []image.ReaderOption{image.WithThreads(*threads)}
	if *force {
		opts = append(opts, image.WithForce())
	}
	ctx := commands.Context() // Ctrl-C: stop and clean up, reported as "interrupted"
	m := progress.New("verifying")
	st, err := r.Verify(ctx, append(opts, image.WithProgress(m.Update))...)
	m.Done()
	if err != nil {
		return imageExit(fmt.Errorf("%s: %w", t, err))
	}
	fmt.Printf("%s: valid: %s, %s of RAM, %s image, checked in %s\n", t, st.CodecMix(),
		humanize.IBytes(st.RAMBytes), humanize.IBytes(st.ImageBytes), st.Duration.Round(time.Millisecond))
	return nil
}

func imageRestore(args []string) error {
	fs := commands.FlagSet("image restore", "TARGET --to-file OUT")
	out := fs.String("to-file", "", "new file to write the RAM into (an ELF core file, see --format)")
	format := fs.String("format", "elf", "elf: an ELF core file (PT_LOAD per RAM range at its physical address) for gdb, crash and 'hibernate image create'; raw: a sparse flat file, offset = physical address")
	force := fs.Bool("force", false, "accept an invalidated image whose data is intact")
	threads := fs.Int("threads", 0, "decompression workers (0: one per CPU)")
	var kf secret.Flags
	kf.Register(fs)
	spec, err := imageParse(fs, args)
	if err != nil {
		return err
	}
	if *out == "" {
		return cli.Usagef("need --to-file OUT")
	}
	if *format != "elf" && *format != "raw" {
		return cli.Usagef("--format %s: use elf or raw", *format)
	}
	r, t, err := imageOpen(spec, &kf)
	if err != nil {
		return err
	}
	defer r.Close()
	opts := []image.ReaderOption{image.WithThreads(*threads)}
	if *force {
		opts = append(opts, image.WithForce())
	}
	// Refuse before creating the output, so a bad image leaves nothing behind.
	if err := image.Usable(r.Status(), *force); err != nil {
		return imageExit(fmt.Errorf("%s: %w", t, err))
	}
	// From here Ctrl-C cancels ctx: the restore stops and removes the
	// half-written file (reported as "interrupted").
	ctx := commands.Context()
	f, err := createPrivate(*out)
	if err != nil {
		return err
	}
	var sink io.WriterAt = f
	if *format == "elf" {
		md := r.Metadata()
		info := r.Info()
		pageSize := int64(md.PageSize)
		if pageSize == 0 {
			pageSize = 4096
		}
		note := []string{"image_id=" + info.ID, "kernel_release=" + md.KernelRelease, "hostname=" + md.Hostname,
			"created=" + info.Created.Format(time.RFC3339), "mode=" + md.Extra["mode"]}
		if sink, err = newELFCore(f, r.Ranges(), note, pageSize); err != nil {
			f.Close()
			os.Remove(*out)
			return fmt.Errorf("writing %s: %w", *out, err)
		}
	}
	m := progress.New("restoring")
	st, err := r.Restore(ctx, sink, append(opts, image.WithProgress(m.Update))...)
	m.Done()
	if err == nil && *format == "raw" {
		// The file spans all of RAM, so it compares byte for byte with a
		// flat memory dump even when the top pages were zero.
		rs := r.Ranges()
		err = f.Truncate(int64(rs[len(rs)-1].End))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out) // ours (O_EXCL): no half-written RAM left behind
		return imageExit(fmt.Errorf("restoring %s to %s: %w", t, *out, err))
	}
	secs := max(st.Duration.Seconds(), 1e-9)
	fmt.Printf("restored %d pages (%s) from %s to %s (%s) in %s (%s/s of RAM)\n", st.StoredPages,
		humanize.IBytes(st.StoredPages*uint64(r.Metadata().PageSize)), t, *out, formatName(*format), st.Duration.Round(time.Millisecond),
		humanize.IBytes(uint64(float64(st.RAMBytes)/secs)))
	return nil
}

// createPrivate creates the file decrypted RAM goes into: new (an existing
// file may be someone else's, or readable by others, and would keep its
// owner and mode), not through a symbolic link, readable by its owner only.
func createPrivate(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("--to-file %s exists (or is a symbolic link): the restored RAM goes only into a new file, readable by its owner alone; remove it or give a new name", path)
	}
	return f, err
}

func formatName(f string) string {
	if f == "elf" {
		return "ELF core file"
	}
	return "flat sparse file, offset = physical address"
}
