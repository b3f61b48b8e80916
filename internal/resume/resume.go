// Package resume is the boot side of kjump: find a committed image,
// authenticate its header, index and commit record, check the disks, mark
// it restoring, and kexec a restore kernel confined to the reserved region
// that checks each chunk as it writes it back and jumps into the saved
// kernel.
package resume

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dustin/go-humanize"
	"github.com/kjump/kjump/internal/fsstate"
	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/launch"
	"github.com/kjump/kjump/internal/layout"
	"github.com/kjump/kjump/internal/phys"
	"github.com/kjump/kjump/internal/resolve"
	"github.com/kjump/kjump/internal/storage"
	"github.com/kjump/kjump/internal/sysinfo"
)

// Options select the image and the restore kernel.
type Options struct {
	Target       string
	HelperKernel string
	HelperInitrd string
	HelperArgs   string
	Force        bool // restore an invalidated image (after a failed resume)
	// Retry restores an image whose restore started at an earlier boot and
	// did not finish (kjump.force=1 on the kernel command line): only
	// such an image, never one spent by a finished resume or a refusal.
	Retry bool
	// AllowUnproven resumes onto filesystems the stale-disk guard cannot
	// check (resume.allow_unproven, kjump.allow_unproven).
	AllowUnproven bool
	// Secret unlocks an encrypted image. Given one, resume refuses a plain
	// image: one written with the key is always encrypted.
	Secret *image.Secret
	Log    func(format string, args ...any)
	// Here restores in this kernel instead of starting a restore kernel:
	// set by a restore kernel the boot loader started directly
	// (kjump.direct=), confined to the reserved region.
	Here *Here
}

// Here is a restore in the running kernel, which the boot loader started
// in the reserved region: it sees the machine's RAM only in the firmware
// map, and it trusts nothing but proof. A filesystem it cannot find (a
// driver it lacks) or cannot prove unchanged refuses the image without
// invalidating it, for the normal boot that follows, with every driver, to
// decide.
type Here struct {
	Region phys.Range
	// RAM is the machine's RAM from the firmware map, less Region.
	RAM phys.Ranges
	// Restore writes the pages back and jumps into the original; it
	// returns only on failure, after the image was marked restoring.
	Restore func(in handoff.Instructions, t storage.Target) error
}

func (o Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}

// ErrNothingToResume means the target holds no committed image: boot on.
var ErrNothingToResume = errors.New("no image to resume")

// Run resumes from o.Target. It does not return when the restore kernel
// starts; it returns ErrNothingToResume when there is no image, or an error
// explaining why an image was refused (the machine then boots normally).
// Its phases: open and verify the image, check the disks, launch the
// restore kernel.
func Run(o Options) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root")
	}
	t, err := storage.OpenAtBoot(o.Target)
	if err != nil {
		return err
	}
	defer t.Close()
	img, err := openAndVerify(t.Target, o)
	if err != nil {
		return err
	}
	defer img.wipe()
	if err := checkDisks(t.Target, img, o); err != nil {
		return err
	}
	if o.Here != nil {
		return restoreHere(t.Target, img, o)
	}
	return launchRestore(t, img, o)
}

// verified is an image whose header, index and commit record were
// authenticated, and that may be resumed.
type verified struct {
	info   image.Info
	status error // nil: committed; image.ErrInvalidated, ErrRestoreStarted: forced or retried
	// key is the derived key, for the restore kernel; nil for a plain
	// image. keyOpts carry it to InvalidateTarget: an encrypted image's
	// commit MAC covers its state.
	key     *image.Key
	keyOpts []image.ReaderOption
	// digest is the header and index resume checked (Reader.Digest): the
	// restore kernel refuses any other image.
	digest string
}

func (v *verified) wipe() {
	if v.key != nil {
		v.key.Wipe()
	}
}

// openAndVerify opens the image on t and decides whether it may be
// resumed, before the point of no return. Open authenticates the header,
// index and commit record (their SHA-256 in the commit record, or with a
// key its MAC) and checks the image's RAM against this machine's. The
// chunks are read once, by the restore kernel, which checks each one
// (record sum or GCM tag before decoding, its pages' sum after) before
// writing its pages, and reboots if one fails, leaving the image intact
// for a retry with kjump.force=1: nothing unchecked is ever jumped into.
// (Checking every chunk here as well read the whole image twice.)
func openAndVerify(t storage.Target, o Options) (*verified, error) {
	kopts := machineRAM()
	if o.Here != nil {
		kopts = []image.ReaderOption{image.WithMachineRAM(imageRanges(o.Here.RAM))}
	}
	if o.Secret != nil {
		kopts = append(kopts, image.WithSecret(*o.Secret))
	}
	start := time.Now()
	r, err := image.OpenTarget(t, kopts...)
	if err := usable(t, r, err, o); err != nil {
		if r != nil {
			r.Close()
		}
		return nil, err
	}
	defer r.Close()
	v := &verified{info: r.Info(), status: r.Status(), key: r.Key(), digest: r.Digest()}
	if errors.Is(v.status, image.ErrRestoreStarted) {
		o.logf("retrying the interrupted restore of image %s (%s)", v.info.ID, retryReason(o))
	}
	if v.key != nil {
		v.keyOpts = append(v.keyOpts, image.WithKey(v.key))
	}
	info := v.info
	o.logf("verifying image %s on %s (%s, hibernated %s): header, index and commit record authenticated in %s; each of its %d chunks (%s) is checked as it is written back",
		info.ID, t, info.Metadata.KernelRelease, info.Created.Format("2006-01-02 15:04:05"), time.Since(start).Round(time.Millisecond), info.Chunks, humanize.IBytes(uint64(info.ImageBytes)))
	return v, nil
}

// usable is the rule for whether the image OpenTarget returned (r, err)
// may be resumed: nil, or why not (wrapping ErrNothingToResume when there
// is simply no image to resume). o.Force allows an invalidated image, o.Retry
// only one whose restore was interrupted.
func usable(t storage.Target, r *image.Reader, err error, o Options) error {
	var ue *image.UnfinishedError
	switch {
	case errors.As(err, &ue):
		return fmt.Errorf("%w: %v", ErrNothingToResume, ue)
	case errors.Is(err, image.ErrNotCommitted):
		return fmt.Errorf("%w on %s", ErrNothingToResume, t)
	case err != nil:
		return fmt.Errorf("image on %s is unusable, booting normally: %w", t, err)
	}
	info, status := r.Info(), r.Status()
	if errors.Is(status, image.ErrNotEncrypted) && !plainCommitted(t) {
		// A spent plain image from before encryption was set up.
		return fmt.Errorf("%w: unencrypted image %s on %s is not committed", ErrNothingToResume, info.ID, t)
	}
	restoring := errors.Is(status, image.ErrRestoreStarted)
	force := "'resume --force' restores it anyway"
	if o.Here != nil {
		// A direct restore kernel has no shell to run it in.
		force = "the normal boot that follows leaves it alone ('resume --force' there restores it anyway)"
	}
	switch err := image.Usable(status, o.Force || (o.Retry && restoring)); {
	case err != nil && restoring:
		return fmt.Errorf("%w: a restore of image %s on %s started at an earlier boot and did not finish (power loss, or the restore kernel failed); "+
			"to retry it, boot once with kjump.force=1 on the kernel command line before anything writes to the disks it saved (this boot may: then the image is refused as stale)", ErrNothingToResume, info.ID, t)
	case errors.Is(err, image.ErrInvalidated) && o.Retry:
		return fmt.Errorf("%w: image %s on %s was already resumed or refused (spent), not interrupted: kjump.force=1 retries only an interrupted restore; %s", ErrNothingToResume, info.ID, t, force)
	case errors.Is(err, image.ErrInvalidated):
		return fmt.Errorf("%w: image %s on %s was already used or refused (invalidated); %s", ErrNothingToResume, info.ID, t, force)
	case err != nil:
		return fmt.Errorf("image %s on %s is not resumable, booting normally: %w", info.ID, t, err)
	}
	return nil
}

// retryReason names the switch that let an interrupted restore through.
func retryReason(o Options) string {
	if o.Retry {
		return "kjump.force=1"
	}
	return "--force"
}

// machineRAM has the reader check the image's RAM ranges against this
// machine's before it reads the index, so a forged or foreign image cannot
// make resume allocate for a larger machine. Without /proc/iomem the check
// is left to sameMachine, after verification.
func machineRAM() []image.ReaderOption {
	iomem, err := sysinfo.ReadIOMem()
	if err != nil {
		return nil
	}
	var rs []image.Range
	for _, r := range sysinfo.SystemRAM(iomem) {
		if a := r.PageAligned(); !a.Empty() {
			rs = append(rs, image.Range{Start: a.Start, End: a.End})
		}
	}
	if len(rs) == 0 {
		return nil
	}
	return []image.ReaderOption{image.WithMachineRAM(rs)}
}

// plainCommitted reports whether t holds a committed plain image.
func plainCommitted(t storage.Target) bool {
	r, err := image.OpenTarget(t)
	if err != nil {
		return false
	}
	defer r.Close()
	return r.Status() == nil
}

// checkDisks refuses an image whose filesystems changed since it was made,
// and invalidates it: it can never be resumed safely.
func checkDisks(t storage.Target, img *verified, o Options) error {
	info := img.info
	if o.Here != nil {
		o.AllowUnproven = false
	}
	fsr, err := fsstate.Check(info.Metadata.Filesystems, o.AllowUnproven)
	if o.Here != nil {
		if err := provenHere(info, fsr, err); err != nil {
			return err
		}
	}
	for _, m := range fsr.Missing {
		o.logf("warning: filesystem %s (%s, was %s) that was mounted at hibernation is not attached; the resumed system will find it gone", m.UUID, m.Type, m.Device)
	}
	for _, a := range fsr.Accepted {
		o.logf("warning: filesystem %s (%s on %s) cannot be proven unchanged (%s); resuming onto it as allow_unproven says", a.UUID, a.Type, a.Device, fsstate.Unproven(a))
	}
	var stale *fsstate.StaleError
	if errors.As(err, &stale) {
		if ierr := image.InvalidateTarget(t, img.keyOpts...); ierr != nil {
			o.logf("warning: could not invalidate the stale image: %v", ierr)
		}
		return fmt.Errorf("image %s on %s is stale and was invalidated, booting normally: %w", info.ID, t, err)
	}
	if err != nil {
		return fmt.Errorf("image %s on %s: checking filesystems for changes since hibernation: %w; booting normally", info.ID, t, err)
	}
	if len(fsr.Unchanged) > 0 {
		o.logf("filesystems proven unchanged since the image: %s", fsstate.Names(fsr.Unchanged))
	}
	return nil
}

// launchRestore plans the restore kernel for this machine, invalidates the
// image (the point of no return) and starts the restore kernel.
func launchRestore(t *storage.BootTarget, img *verified, o Options) error {
	sys, err := sysinfo.Read()
	if err != nil {
		return err
	}
	plan, err := launch.Plan(sys, launch.Kernel{Path: o.HelperKernel, Initrd: o.HelperInitrd, Args: o.HelperArgs}, true)
	if err != nil {
		return err
	}
	if err := sameMachine(img.info, plan, sys); err != nil {
		return err
	}
	tspec, err := resolve.Target(t.Path)
	if err != nil {
		return err
	}
	// Name it as the user did, not by a resolved device or our mount point.
	tspec.Spec = o.Target
	if tspec.File != nil {
		tspec.File.Path = o.Target
	}
	// Point of no return: from here a crash must not resume this image
	// by default, so mark it restoring before the restore kernel starts.
	// A restore that does not finish leaves it so, for a retry with
	// kjump.force=1; the restore kernel marks it spent when it is done.
	if img.status == nil {
		if err := image.MarkRestoringTarget(t.Target, img.keyOpts...); err != nil {
			return fmt.Errorf("cannot invalidate image %s before resuming (refusing to risk resuming it twice): %w", img.info.ID, err)
		}
	}
	l, err := launch.Open(plan, o.logf)
	if err != nil {
		return err
	}
	defer l.Close()
	in := handoff.Instructions{Mode: handoff.Restore, ImageID: img.info.ID, ImageDigest: img.digest,
		RAM: layout.OriginalRAM(sys.IOMem, plan.Region()), Target: tspec, Region: plan.Region(), Backup: plan.Backup.Start, JumpStub: plan.JumpStub,
		Release: sysinfo.KernelRelease(), Key: img.key}
	err = l.Write(in)
	if err == nil {
		err = l.Load()
	}
	if err != nil {
		return fmt.Errorf("starting the restore kernel: %w", err)
	}
	o.logf("image %s verified and invalidated (marked as being restored: if this restore does not finish, kjump.force=1 retries it); starting the restore kernel", img.info.ID)
	unix.Sync()
	_, err = l.Jump()
	return err
}

// sameMachine refuses an image whose RAM layout or reserved region differ
// from this machine's: its pages would land on the wrong memory.
func sameMachine(info image.Info, plan *layout.HelperPlan, sys *sysinfo.System) error {
	region := plan.Region()
	if got := info.Metadata.Extra[handoff.RegionKey]; got != "" {
		if r, err := handoff.ParseRegion(got); err != nil || r != region {
			return fmt.Errorf("image %s was made with the helper region %s but this boot reserves %s: boot with the same memmap= as when hibernating", info.ID, got, handoff.RegionText(region))
		}
	}
	now := layout.OriginalRAM(sys.IOMem, region)
	var saved phys.Ranges
	for _, r := range info.Ranges {
		saved = append(saved, phys.Range{Start: r.Start, End: r.End})
	}
	if saved = saved.Normalize(); !slices.Equal(saved, now) {
		return fmt.Errorf("image %s holds RAM %v but this machine has %v: it was made on another machine or with other memory; booting normally", info.ID, saved, now)
	}
	if rel := info.Metadata.KernelRelease; rel != "" && strings.TrimSpace(rel) == "" {
		return fmt.Errorf("image %s has no kernel release", info.ID)
	}
	return nil
}

// provenHere is the stricter rule of a restore kernel the boot loader
// started: every filesystem the image saved must be found and proven
// unchanged. One it cannot find or prove is left to the normal boot (the
// image stays as it is); a proven change falls through to checkDisks,
// which invalidates the image as any boot would.
func provenHere(info image.Info, fsr fsstate.Result, err error) error {
	var stale *fsstate.StaleError
	switch {
	case len(fsr.Missing) > 0:
		return fmt.Errorf("image %s: this restore kernel does not see filesystem %s (%s, was %s), which a normal boot may (its driver is not in the helper initramfs?); leaving the image to the normal boot", info.ID, fsr.Missing[0].UUID, fsr.Missing[0].Type, fsr.Missing[0].Device)
	case errors.As(err, &stale) && stale.Unproven():
		return fmt.Errorf("image %s: %v; leaving the image to the normal boot, which applies allow_unproven", info.ID, err)
	case err != nil && stale == nil:
		return fmt.Errorf("image %s: checking filesystems for changes since hibernation: %w; leaving the image to the normal boot", info.ID, err)
	}
	return nil
}

// restoreHere marks the image restoring (the point of no return, as
// before a restore kernel starts) and restores it in this kernel.
func restoreHere(t storage.Target, img *verified, o Options) error {
	h := o.Here
	if err := sameMachineHere(img.info, h); err != nil {
		return err
	}
	if img.status == nil {
		if err := image.MarkRestoringTarget(t, img.keyOpts...); err != nil {
			return fmt.Errorf("cannot invalidate image %s before resuming (refusing to risk resuming it twice): %w", img.info.ID, err)
		}
	}
	in := handoff.Instructions{Mode: handoff.Restore, ImageID: img.info.ID, ImageDigest: img.digest,
		RAM: h.RAM, Region: h.Region, JumpStub: layout.JumpStubAddr(h.Region),
		Release: sysinfo.KernelRelease(), Key: img.key}
	o.logf("image %s verified and invalidated (marked as being restored: if this restore does not finish, kjump.force=1 retries it); restoring it in this kernel", img.info.ID)
	return h.Restore(in, t)
}

// sameMachineHere is sameMachine for a kernel that sees the machine's RAM
// in the firmware map: the image's RAM lies in it (Open checked that) and
// is all of it but what a booted kernel keeps back from the firmware's RAM
// (page 0, partial pages), at most 1 MiB.
func sameMachineHere(info image.Info, h *Here) error {
	if got := info.Metadata.Extra[handoff.RegionKey]; got != "" {
		if r, err := handoff.ParseRegion(got); err != nil || r != h.Region {
			return fmt.Errorf("image %s was made with the helper region %s but this restore kernel was started for %s: regenerate the boot entry ('resume boot-entry')", info.ID, got, handoff.RegionText(h.Region))
		}
	}
	var saved phys.Ranges
	for _, r := range info.Ranges {
		saved = append(saved, phys.Range{Start: r.Start, End: r.End})
	}
	saved = saved.Normalize()
	for _, r := range saved {
		if !slices.ContainsFunc(h.RAM, func(x phys.Range) bool { return x.Covers(r) }) {
			return fmt.Errorf("image %s holds RAM %v that this machine's firmware does not report outside the reserved region (%v): it was made on another machine or with other memory", info.ID, r, h.RAM)
		}
	}
	if have, got := h.RAM.Size(), saved.Size(); got > have || have-got > 1<<20 {
		return fmt.Errorf("image %s holds %s of RAM but this machine's firmware reports %s outside the reserved region: it was made on another machine or with other memory", info.ID, humanize.IBytes(got), humanize.IBytes(have))
	}
	return nil
}

func imageRanges(rs phys.Ranges) []image.Range {
	out := make([]image.Range, 0, len(rs))
	for _, r := range rs {
		out = append(out, image.Range{Start: r.Start, End: r.End})
	}
	return out
}
