// Package resume is the boot side of kjump: find a committed image, check
// it completely, invalidate it, and kexec a restore kernel confined to the
// reserved region that writes it back and jumps into the saved kernel.
package resume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dustin/go-humanize"
	"github.com/kjump/kjump/internal/fsstate"
	"github.com/kjump/kjump/internal/hibernate"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/physmem"
	"github.com/kjump/kjump/internal/storage"
)

// Options select the image and the restore kernel.
type Options struct {
	Target       string
	HelperKernel string
	HelperInitrd string
	HelperArgs   string
	Force        bool // restore an invalidated image (after a failed resume)
	// AllowUnproven resumes onto filesystems the stale-disk guard cannot
	// check (resume.allow_unproven, kjump.allow_unproven).
	AllowUnproven bool
	// Secret unlocks an encrypted image. Given one, resume refuses a plain
	// image: one written with the key is always encrypted.
	Secret *image.Secret
	Log    func(format string, args ...any)
}

// ErrNothingToResume means the target holds no committed image: boot on.
var ErrNothingToResume = errors.New("no image to resume")

// Run resumes from o.Target. It does not return when the restore kernel
// starts; it returns ErrNothingToResume when there is no image, or an error
// explaining why an image was refused (the machine then boots normally).
func Run(o Options) error {
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root")
	}
	spec := o.Target
	if dev, path, ok := storage.SplitDevicePath(o.Target); ok {
		// An image file on a filesystem nobody mounted yet (early boot).
		dir, unmount, err := storage.MountReadOnly(dev)
		if err != nil {
			return err
		}
		defer unmount()
		o.Target = filepath.Join(dir, path)
	}
	t, err := storage.Open(o.Target)
	if err != nil {
		return err
	}
	if spec != o.Target {
		t = storage.Named(t, spec)
	}
	var kopts []image.Option
	if o.Secret != nil {
		kopts = append(kopts, image.WithSecret(*o.Secret))
	}
	r, err := image.OpenTarget(t, kopts...)
	var ue *image.UnfinishedError
	if errors.As(err, &ue) {
		return fmt.Errorf("%w: %v", ErrNothingToResume, ue)
	}
	if errors.Is(err, image.ErrNotCommitted) {
		return fmt.Errorf("%w on %s", ErrNothingToResume, t)
	}
	if err != nil {
		return fmt.Errorf("image on %s is unusable, booting normally: %w", t, err)
	}
	info := r.Info()
	status := r.Status()
	if errors.Is(status, image.ErrNotEncrypted) && !plainCommitted(t) {
		r.Close() // a spent plain image from before encryption was set up
		return fmt.Errorf("%w: unencrypted image %s on %s is not committed", ErrNothingToResume, info.ID, t)
	}
	key := r.Key()             // the derived key, for the restore kernel; nil for a plain image
	var keyOpts []image.Option // an encrypted image's commit MAC covers its state
	if key != nil {
		defer key.Wipe()
		keyOpts = append(keyOpts, image.WithKey(key))
	}
	switch {
	case errors.Is(status, image.ErrInvalidated) && !o.Force:
		r.Close()
		return fmt.Errorf("%w: image %s on %s was already used or refused (invalidated); 'resume --force' restores it anyway", ErrNothingToResume, info.ID, t)
	case status != nil && !errors.Is(status, image.ErrInvalidated):
		r.Close()
		return fmt.Errorf("image %s on %s is not resumable, booting normally: %w", info.ID, t, status)
	}
	logf("verifying image %s on %s (%s, hibernated %s)", info.ID, t, info.Metadata.KernelRelease, info.Created.Format("2006-01-02 15:04:05"))
	// Two readers per CPU: each waits for its O_DIRECT read (see the
	// restore kernel's workers).
	vopts := []image.Option{image.WithThreads(2 * runtime.NumCPU())}
	if o.Force {
		vopts = append(vopts, image.WithForce())
	}
	// Every stored byte is checked here, before the point of no return;
	// decoding waits for the restore kernel, which checks each chunk's
	// pages before writing them (and reboots if one fails).
	st, err := r.VerifyStored(context.Background(), vopts...)
	if err != nil {
		r.Close()
		return fmt.Errorf("image %s on %s failed verification, it will not be resumed: %w", info.ID, t, err)
	}
	r.Close()
	logf("checked %s in %s in %s", humanize.IBytes(st.ImageBytes), st.CodecMix(), st.Duration.Round(10*time.Millisecond))
	fsr, err := fsstate.Check(info.Metadata.Filesystems, o.AllowUnproven)
	for _, m := range fsr.Missing {
		logf("warning: filesystem %s (%s, was %s) that was mounted at hibernation is not attached; the resumed system will find it gone", m.UUID, m.Type, m.Device)
	}
	for _, a := range fsr.Accepted {
		logf("warning: filesystem %s (%s on %s) cannot be proven unchanged (%s); resuming onto it as allow_unproven says", a.UUID, a.Type, a.Device, fsstate.Unproven(a))
	}
	var stale *fsstate.StaleError
	if errors.As(err, &stale) {
		// The disk moved on: this image can never be resumed safely.
		if ierr := image.InvalidateTarget(t, keyOpts...); ierr != nil {
			logf("warning: could not invalidate the stale image: %v", ierr)
		}
		return fmt.Errorf("image %s on %s is stale and was invalidated, booting normally: %w", info.ID, t, err)
	}
	if err != nil {
		return fmt.Errorf("image %s on %s: checking filesystems for changes since hibernation: %w; booting normally", info.ID, t, err)
	}
	if len(fsr.Unchanged) > 0 {
		logf("filesystems proven unchanged since the image: %s", fsstate.Names(fsr.Unchanged))
	}

	sys, err := hibernate.ReadSystem()
	if err != nil {
		return err
	}
	hopts := hibernate.Options{HelperKernel: o.HelperKernel, HelperInitrd: o.HelperInitrd, HelperArgs: o.HelperArgs}
	plan, err := hibernate.PlanRestore(sys, hopts)
	if err != nil {
		return err
	}
	if err := sameMachine(info, plan, sys); err != nil {
		return err
	}
	tspec, err := hibernate.ResolveTarget(o.Target)
	if err != nil {
		return err
	}
	if tspec.File != nil {
		tspec.File.Path = spec // name it as the user did, not by our mount point
	}
	// Point of no return: from here a crash must not resume this image
	// twice, so invalidate it before the restore kernel starts.
	if status == nil {
		if err := image.InvalidateTarget(t, keyOpts...); err != nil {
			return fmt.Errorf("cannot invalidate image %s before resuming (refusing to risk resuming it twice): %w", info.ID, err)
		}
	}
	in := jump.Instructions{Mode: "restore", ImageID: info.ID, StoredHeaders: fmt.Sprintf("%08x", st.Headers), Target: tspec, Backup: plan.Backup.Start,
		JumpStub: plan.JumpStub, Release: jump.KernelRelease(), Key: key}
	handoff, err := jump.EncodeHandoff(in)
	if err != nil {
		return err
	}
	mem, err := physmem.Open("/dev/mem", true)
	if err != nil {
		clear(handoff)
		return err
	}
	defer mem.Close()
	_, err = mem.WriteAt(handoff, int64(plan.Handoff))
	clear(handoff)
	if err == nil {
		err = plan.Image.Load()
	}
	if err != nil {
		if key != nil {
			hibernate.WipeRegion(mem, plan, logf)
		}
		return fmt.Errorf("starting the restore kernel: %w", err)
	}
	logf("image %s verified and invalidated; starting the restore kernel", info.ID)
	unix.Sync()
	return jump.Jump()
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

// sameMachine refuses an image whose RAM layout or reserved region differ
// from this machine's: its pages would land on the wrong memory.
func sameMachine(info image.Info, plan *jump.HelperPlan, sys *hibernate.System) error {
	region := fmt.Sprintf("%#x-%#x", plan.HelperRAM.Start, plan.Tail.End)
	if got := info.Metadata.Extra["region"]; got != "" && got != region {
		return fmt.Errorf("image %s was made with the helper region %s but this boot reserves %s: boot with the same memmap= as when hibernating", info.ID, got, region)
	}
	now := jump.OriginalRAM(sys.IOMem, jump.Range{Start: plan.HelperRAM.Start, End: plan.Tail.End})
	var saved jump.Ranges
	for _, r := range info.Ranges {
		saved = append(saved, jump.Range{Start: r.Start, End: r.End})
	}
	if fmt.Sprint(saved.Normalize()) != fmt.Sprint(now) {
		return fmt.Errorf("image %s holds RAM %v but this machine has %v: it was made on another machine or with other memory; booting normally", info.ID, saved.Normalize(), now)
	}
	if rel := info.Metadata.KernelRelease; rel != "" && strings.TrimSpace(rel) == "" {
		return fmt.Errorf("image %s has no kernel release", info.ID)
	}
	return nil
}
