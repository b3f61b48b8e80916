// Package helper is kjump's PID 1 inside the helper kernel: it reads its
// instructions from the handoff area, captures the stopped original
// kernel's RAM through /proc/vmcore, reports, and jumps back (or powers off
// once a hibernation image is committed).
package helper

import (
	"errors"
	"fmt"
	"hash/crc64"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/cmdline"
	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/jump/purgatory"
	"github.com/kjump/kjump/internal/physmem"
	"github.com/kjump/kjump/internal/sysinfo"
)

// IsHelper reports whether this process is PID 1 of a kjump helper kernel:
// kjump's binary is init only there (the kernel passes unknown command
// line words such as "nokaslr" as arguments, so they cannot decide).
func IsHelper() bool { return os.Getpid() == 1 }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kjump-helper: "+format+"\n", args...)
}

// Main runs the helper. It only returns if it could not even jump back.
func Main() error {
	if err := mountBasics(); err != nil {
		logf("%v", err)
	}
	loadModules()
	if line, err := os.ReadFile("/proc/cmdline"); err == nil {
		if region, ok, err := directRegion(string(line)); ok {
			return mainDirect(string(line), region, err)
		}
	}
	start := time.Now()
	mem, area, h, err := readHandoff()
	if err != nil {
		return fatal(err)
	}
	in := h.Instructions
	// The release: the helper boots quiet, without the kernel's banner.
	logf("up in %.2fs on %d CPUs (Linux %s): mode %s, jump-back entry %#x", uptime(), runtime.NumCPU(), sysinfo.KernelRelease(), in.Mode, h.Entry)

	res := handoff.Result{Mode: in.Mode, CPUs: runtime.NumCPU(), Details: map[string]string{}}
	if in.Mode == handoff.Restore {
		return restoreAndJump(mem, area, h, &res, start)
	}
	// Find the way back first: a helper that cannot return must not
	// write an image that promises a return.
	gdt, err := savedGDT(mem, in)
	if err != nil {
		return fatal(err)
	}
	// The work runs in a worker process under a progress watchdog: PID 1
	// must outlive a worker that runs out of memory or hangs on a dead
	// target, and jump back.
	if werr := supervise(in, &res); werr != nil {
		res.OK = false
		res.Error = werr.Error()
		logf("failed: %v; jumping back", werr)
	} else {
		res.OK = true
	}
	res.Seconds = time.Since(start).Seconds()
	if err := area.Report(res); err != nil {
		if !res.OK || in.Mode != handoff.Now {
			// Going home without a report beats powering off: the
			// original says the helper returned without one.
			logf("cannot write the report (%v); jumping back without it", err)
			return fatal(jumpBack(mem, h, gdt))
		}
		logf("cannot write the report (%v); the image is committed: powering off", err)
	}
	if res.OK && in.Mode == handoff.Now {
		logf("image committed; powering off")
		unix.Sync()
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		return fatal(fmt.Errorf("power off failed"))
	}
	return fatal(jumpBack(mem, h, gdt))
}

// readHandoff finds the handoff area the kernel command line names and
// reads the instructions.
func readHandoff() (*physmem.Mem, handoff.Area, handoff.Handoff, error) {
	addr, err := handoffAddr()
	if err != nil {
		return nil, handoff.Area{}, handoff.Handoff{}, err
	}
	mem, err := physmem.Open("/dev/mem", true)
	if err != nil {
		return nil, handoff.Area{}, handoff.Handoff{}, err
	}
	area := handoff.Area{Mem: mem, Addr: addr}
	h, err := area.Read()
	return mem, area, h, err
}

// run does what the instructions ask, short of jumping back.
func run(h handoff.Handoff, gdt purgatory.GDTDesc, res *handoff.Result) error {
	in := h.Instructions
	switch {
	case in.Mode == handoff.Probe || in.Mode == handoff.Checkpoint && in.Target.Spec == "":
		return sampleOriginal(res)
	case in.Mode.WritesImage():
		return capture(h, gdt, res)
	}
	return fmt.Errorf("mode %q is not supported by this helper", in.Mode)
}

// restoreAndJump is the restore kernel's job: pages back, then into the
// original. On failure it reboots; the image stays intact, marked as an
// interrupted restore, which a boot with kjump.force=1 retries.
func restoreAndJump(mem *physmem.Mem, area handoff.Area, h handoff.Handoff, res *handoff.Result, start time.Time) error {
	jb, err := restore(h, mem, res)
	if err == nil {
		res.OK = true
		res.Mode = handoff.Resumed
		res.Seconds = time.Since(start).Seconds()
		if err = area.Report(*res); err == nil {
			var im jump.Image
			if im, err = jb.Image(); err == nil {
				if err = im.Load(); err == nil {
					logf("jumping into the restored kernel at %#x", jb.Entry)
					err = jump.Jump()
				}
			}
		}
	}
	logf("RESTORE FAILED: %v", err)
	logf("rebooting into a normal boot in 5s; the image is intact: boot once with kjump.force=1 on the kernel command line to retry it (before anything writes to its disks)")
	time.Sleep(5 * time.Second)
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	return err
}

// savedGDT reads the original's GDT descriptor, which kernels before 6.13
// need reloaded on the way back.
func savedGDT(mem *physmem.Mem, in handoff.Instructions) (purgatory.GDTDesc, error) {
	if in.SavedContext == 0 {
		return purgatory.GDTDesc{}, nil
	}
	ctx := make([]byte, 1024)
	if _, err := mem.ReadAt(ctx, int64(in.SavedContext)); err != nil {
		return purgatory.GDTDesc{}, fmt.Errorf("reading the original's saved_context: %w", err)
	}
	d, err := jump.FindSavedGDT(ctx)
	if err != nil && in.Convention.NeedsSavedGDT() {
		return d, err
	}
	return d, nil
}

// jumpBack loads the jump-back image and executes it; it returns only on
// failure.
func jumpBack(mem *physmem.Mem, h handoff.Handoff, gdt purgatory.GDTDesc) error {
	in := h.Instructions
	entryPage := make([]byte, jump.PageSize)
	if _, err := mem.ReadAt(entryPage, int64(h.Entry&^(jump.PageSize-1))); err != nil {
		return fmt.Errorf("reading the original's entry page: %w", err)
	}
	low := make([]byte, jump.LowMemSize)
	if _, err := mem.ReadAt(low, int64(in.Backup)); err != nil {
		return fmt.Errorf("reading the low-memory backup: %w", err)
	}
	im, err := jump.JumpBack{Entry: h.Entry, GDT: gdt, StubAddr: in.JumpStub, EntryPage: entryPage, LowMem: low}.Image()
	if err != nil {
		return err
	}
	if err := im.Load(); err != nil {
		return err
	}
	logf("jumping back to %#x (GDT %#x/%#x)", h.Entry, gdt.Limit, gdt.Base)
	for try := 1; ; try++ {
		err := jump.Jump()
		if !errors.Is(err, unix.EBUSY) || try == 4 {
			return err
		}
		// The kernel freezes every task before the jump; one blocked
		// on a dead target cannot be frozen. A forced unmount fails
		// its requests.
		logf("%v; forcing the target's unmount and trying again in 5s", err)
		unix.Unmount(mountPoint, unix.MNT_FORCE)
		unix.Unmount(mountPoint, unix.MNT_DETACH)
		time.Sleep(5 * time.Second)
	}
}

// sampleOriginal reads all of the original's RAM through /proc/vmcore,
// counts zero pages and checksums every 64th page: proof that the helper
// sees the stopped kernel's memory, cheap enough for an emulated CPU.
func sampleOriginal(res *handoff.Result) error {
	src, err := openVMCore()
	if err != nil {
		return err
	}
	defer src.Close()
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	zero := make([]byte, jump.PageSize)
	buf := make([]byte, 1<<20)
	var total, zeros uint64
	t0 := time.Now()
	for _, r := range src.Ranges() {
		for a := r.Start; a < r.End; {
			n := min(uint64(len(buf)), r.End-a)
			if _, err := src.ReadAt(buf[:n], int64(a)); err != nil {
				return fmt.Errorf("reading the original's RAM at %#x: %w", a, err)
			}
			for off := uint64(0); off < n; off += jump.PageSize {
				pg := buf[off : off+jump.PageSize]
				if string(pg) == string(zero) {
					zeros++
				}
				if (a+off)/jump.PageSize%64 == 0 {
					h.Write(pg)
				}
			}
			a += n
			total += n
		}
	}
	secs := time.Since(t0).Seconds()
	res.RAMBytes = total
	res.Details["sample_crc64"] = strconv.FormatUint(h.Sum64(), 16)
	res.Details["zero_pages"] = strconv.FormatUint(zeros, 10)
	res.Details["read_seconds"] = strconv.FormatFloat(secs, 'f', 2, 64)
	logf("read %d MiB of the original's RAM in %.2fs (%d zero pages)", total>>20, secs, zeros)
	return nil
}

func handoffAddr() (uint64, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return 0, err
	}
	return parseHandoffAddr(string(b))
}

// parseHandoffAddr reads kjump.handoff=ADDR from the helper's command line.
func parseHandoffAddr(line string) (uint64, error) {
	v, ok := cmdline.Value(line, "kjump.handoff")
	if !ok {
		return 0, fmt.Errorf("no kjump.handoff= on the helper's command line")
	}
	a, err := strconv.ParseUint(v, 0, 64)
	if err != nil || a == 0 || a%jump.PageSize != 0 {
		return 0, fmt.Errorf("kjump.handoff=%q on the helper's command line is not a page-aligned physical address: this helper was not started by kjump's hibernate or resume", v)
	}
	return a, nil
}

func mountBasics() error {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}, {"tmpfs", "/tmp", "tmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fs, 0, ""); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mounting %s: %w", m.dst, err)
		}
	}
	if c, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
		for fd := 0; fd <= 2; fd++ {
			unix.Dup2(int(c.Fd()), fd)
		}
	}
	return nil
}

func uptime() float64 {
	b, _ := os.ReadFile("/proc/uptime")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// fatal is the end of the road: the helper cannot return to the original.
// Say so loudly and power off rather than hang; the original's memory is
// lost, but no half-written image is committed.
func fatal(err error) error {
	logf("FATAL: %v", err)
	if b, err := os.ReadFile("/proc/iomem"); err == nil {
		logf("helper's /proc/iomem:\n%s", b)
	}
	logf("cannot return to the original kernel; powering off in 10s")
	// sync may block for good on a target that stopped answering: never
	// let it keep the machine from powering off.
	synced := make(chan struct{})
	go func() { unix.Sync(); close(synced) }()
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
	}
	time.Sleep(10 * time.Second)
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	return err
}
