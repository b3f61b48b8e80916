// Command projection models how long kjump and the kernel's own
// hibernation (swsusp, LZO or LZ4 on 3 threads) take to hibernate and
// resume real machines of 8, 16 and 32 GB on four kinds of storage. It is a
// model, not a measurement: per-core rates measured on this host on `make
// bench`'s memory dump, scaled by thread counts, against a disk that
// reads and writes at a fixed rate.
//
//	go run ./bench/projection                     # measure (about a minute), save the rates, print the table
//	go run ./bench/projection -measure=false      # the table again from the saved rates
//	go run ./bench/projection -used 0.8 -boot 2   # other assumptions, same rates
//
// What it leaves out, the same for both: firmware and the boot to the
// initramfs, freezing tasks, suspending and resuming devices.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func main() {
	cache := os.Getenv("KJUMP_CACHE")
	if cache == "" {
		cache = "/var/cache/kjump"
	}
	dump := flag.String("dump", filepath.Join(cache, "bench", "guest-1g-vmcoreinfo.elf"), "ELF memory dump with VMCOREINFO (make bench builds it)")
	ratesPath := flag.String("rates", "out/bench/rates.json", "where the measured rates are saved, and read from with -measure=false")
	doMeasure := flag.Bool("measure", true, "measure the rates on this host (else read -rates)")
	rounds := flag.Int("rounds", 3, "runs of each measurement; the least CPU time counts")
	var m model
	flag.Float64Var(&m.used, "used", 0.5, "share of RAM the kernel has in use (not free) when it hibernates")
	flag.IntVar(&m.threads, "threads", 4, "kjump's compression and restore workers (image.MaxThreads; a machine with 4 or more cores)")
	flag.IntVar(&m.kernelThreads, "kernel-threads", 3, "swsusp's compression threads (CMP_THREADS in kernel/power/swap.c)")
	flag.Float64Var(&m.boot, "boot", 1.0, "seconds for each kernel boot kjump adds: the helper when hibernating, the restore kernel when resuming")
	flag.Float64Var(&m.jump, "jump", 0.3, "seconds for kjump's jump back into the restored kernel")
	flag.Parse()

	var r *Rates
	var err error
	if *doMeasure {
		tmp, terr := os.MkdirTemp("", "kjump-projection")
		if terr != nil {
			fail(terr)
		}
		r, err = measure(*dump, *rounds, tmp)
		os.RemoveAll(tmp)
		if err == nil {
			err = save(r, *ratesPath)
		}
	} else {
		r, err = load(*ratesPath)
	}
	if err != nil {
		fail(err)
	}
	m.r = r
	if err := m.check(); err != nil {
		fail(err)
	}
	m.print(os.Stdout)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "projection:", err)
	os.Exit(1)
}

func save(r *Rates, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func load(path string) (*Rates, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w (run without -measure=false first)", err)
	}
	var r Rates
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// disk is storage that reads and writes at one rate.
type disk struct {
	name string
	mbps float64
}

var disks = []disk{
	{"NVMe SSD, 3 GB/s", 3000},
	{"SATA SSD, 500 MB/s", 500},
	{"USB 3 stick, 100 MB/s", 100},
	{"1 GbE NFS, 110 MB/s", 110},
}

var ramGB = []float64{8, 16, 32}

type model struct {
	r                      *Rates
	used                   float64
	threads, kernelThreads int
	boot, jump             float64
}

func (m *model) check() error {
	for _, c := range []string{"kjump-zstd", "kjump-s2", "lzo", "lz4"} {
		k, ok := m.r.Codecs[c]
		if !ok || k.CompressMBps <= 0 || k.DecompressMBps <= 0 || k.Ratio <= 0 {
			return fmt.Errorf("rates lack codec %s: measure again", c)
		}
	}
	if m.r.InUseBytes == 0 || m.r.StoredBytes == 0 || m.r.MemcpyMBps <= 0 || m.r.VerifyMBps <= 0 {
		return fmt.Errorf("rates incomplete: measure again")
	}
	if m.used <= 0 || m.used > 1 || m.threads < 1 || m.kernelThreads < 1 {
		return fmt.Errorf("-used must be in (0, 1], thread counts at least 1")
	}
	return nil
}

// machine is what one RAM size holds: MB in use, and MB of non-zero
// in-use pages, in the dump's proportion.
type machine struct{ inUse, stored float64 }

func (m *model) machine(gb float64) machine {
	inUse := gb * 1e3 * 1.073741824 * m.used // GiB of RAM in MB
	return machine{inUse: inUse, stored: inUse * float64(m.r.StoredBytes) / float64(m.r.InUseBytes)}
}

// kjumpCapture is the capture's seconds, image MB and zstd share: Auto
// modelled as the best mix of zstd and S2 chunks, where the workers and
// the disk finish together (or all S2 when the CPUs limit even then, all
// zstd when the disk does).
func (m *model) kjumpCapture(mc machine, d disk) (secs, image, zstd float64) {
	z, s := m.r.Codecs["kjump-zstd"], m.r.Codecs["kjump-s2"]
	k := float64(m.threads)
	cpu := func(x float64) float64 { return mc.stored * (x/z.CompressMBps + (1-x)/s.CompressMBps) / k }
	img := func(x float64) float64 { return mc.stored * (x/z.Ratio + (1-x)/s.Ratio) }
	io := func(x float64) float64 { return img(x) / d.mbps }
	var x float64
	switch {
	case cpu(0) >= io(0):
		x = 0
	case cpu(1) <= io(1):
		x = 1
	default: // cpu(x) = io(x), both linear in x
		a0, a1 := cpu(0), cpu(1)-cpu(0)
		b0, b1 := io(0), io(1)-io(0)
		x = (b0 - a0) / (a1 - b1)
	}
	return max(cpu(x), io(x)), img(x), x
}

// kjumpRestore is the restore pass's seconds for an image coded with zstd
// share x.
func (m *model) kjumpRestore(mc machine, d disk, image, x float64) float64 {
	z, s := m.r.Codecs["kjump-zstd"], m.r.Codecs["kjump-s2"]
	cpu := mc.stored * (x/z.DecompressMBps + (1-x)/s.DecompressMBps) / float64(m.threads)
	return max(cpu, image/d.mbps)
}

// kjumpVerify is resume's verify pass (the image read once before the
// point of no return, record CRCs).
func (m *model) kjumpVerify(d disk, image float64) float64 {
	return max(image/(m.r.VerifyMBps*float64(m.threads)), image/d.mbps)
}

// swsusp: the snapshot copies every in-use page on one CPU; compression
// threads and the disk then overlap. Resume reads, decompresses and
// copies the pages into place.
func (m *model) swsuspHibernate(mc machine, d disk, c Codec) (secs, image float64) {
	image = mc.stored / c.Ratio
	snapshot := mc.inUse / m.r.MemcpyMBps
	return snapshot + max(mc.stored/(c.CompressMBps*float64(m.kernelThreads)), image/d.mbps), image
}

func (m *model) swsuspResume(mc machine, d disk, c Codec) float64 {
	image := mc.stored / c.Ratio
	return max(image/d.mbps, mc.stored/(c.DecompressMBps*float64(m.kernelThreads))) + mc.inUse/m.r.MemcpyMBps
}

func (m *model) print(w io.Writer) {
	r := m.r
	fmt.Fprintf(w, "MODEL, not a measurement. Rates measured %s on %s:\n\n", r.Measured, filepath.Base(r.Dump))
	fmt.Fprintf(w, "- dump: %.0f MiB of RAM, %.0f MiB in use, %.0f MiB of it non-zero (%.0f%%)\n", mib(r.RAMBytes), mib(r.InUseBytes), mib(r.StoredBytes), 100*float64(r.StoredBytes)/float64(r.InUseBytes))
	fmt.Fprintln(w, "\n| codec | compress MB/s per core | decompress MB/s per core | ratio | how |\n|---|---|---|---|---|")
	for _, c := range []string{"kjump-zstd", "kjump-s2", "lzo", "lz4"} {
		k := r.Codecs[c]
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f | %s |\n", c, k.CompressMBps, k.DecompressMBps, k.Ratio, k.How)
	}
	fmt.Fprintf(w, "\nkjump verify pass %.0f MB/s of image per core; memory copy %.0f MB/s on one core.\n", r.VerifyMBps, r.MemcpyMBps)
	fmt.Fprintf(w, "Assumed: %.0f%% of RAM in use, composed like the dump's; kjump %d workers, swsusp %d compression threads; each kernel boot kjump adds %.1f s, jump back %.1f s; disks read and write at the same rate. Not modelled (the same for both): firmware, boot to the initramfs, freezing tasks, device suspend and resume.\n\n",
		100*m.used, m.threads, m.kernelThreads, m.boot, m.jump)
	fmt.Fprintln(w, "| RAM | storage | image MB kjump / LZO / LZ4 | hibernate s: kjump | swsusp LZO | swsusp LZ4 | resume s: kjump (verify + restore) | kjump (read once) | swsusp LZO | swsusp LZ4 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	lzo, lz4 := r.Codecs["lzo"], r.Codecs["lz4"]
	for _, gb := range ramGB {
		mc := m.machine(gb)
		for _, d := range disks {
			cap, img, x := m.kjumpCapture(mc, d)
			restore := m.kjumpRestore(mc, d, img, x)
			once := m.boot + restore + m.jump
			twice := m.kjumpVerify(d, img) + once
			hl, il := m.swsuspHibernate(mc, d, lzo)
			h4, i4 := m.swsuspHibernate(mc, d, lz4)
			fmt.Fprintf(w, "| %.0f GB | %s | %.0f / %.0f / %.0f | %.1f (%.0f%% zstd) | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n",
				gb, d.name, img, il, i4, m.boot+cap, 100*x, hl, h4, twice, once, m.swsuspResume(mc, d, lzo), m.swsuspResume(mc, d, lz4))
		}
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
