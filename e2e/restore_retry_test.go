//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"time"
)

func init() {
	register(Scenario{Name: "restore-power-loss-then-force", CPUs: 2, Timeout: 35 * time.Minute, Run: restorePowerLossThenForce})
}

// restorePowerLossThenForce: the power goes out while the restore kernel
// writes the pages back. The image was marked restoring at resume's point
// of no return, so the next boot does not resume it: it says how to retry
// and boots normally, leaving the image as it is. A boot with
// kjump.force=1 on the command line (the boot menu's one-shot retry)
// resumes it and the workload verifies; the restore kernel marked the
// image spent before jumping, so the same switch on a later boot refuses
// it: the retry resumes once.
func restorePowerLossThenForce(s *S) error {
	h, err := hibernateOnce(s, "")
	if err != nil {
		return err
	}
	cut, err := h.bootResume(s, "resume-power-cut")
	if err != nil {
		return err
	}
	if _, err := cut.Expect(`resume: image \w+ verified and invalidated \(marked as being restored`, 5*time.Minute); err != nil {
		return err
	}
	pct, err := cut.Expect(`kjump-helper: restored\s+([1-9]\d)%`, 10*time.Minute)
	if err != nil {
		return err
	}
	cut.Kill()
	if strings.Contains(cut.Console(), "jumping into the restored kernel") {
		return fmt.Errorf("the restore finished before the power was cut; cut earlier")
	}
	fmt.Printf("  %s: power cut with the restore at %s%%\n", s.Name, pct[1])

	normal, err := h.bootResume(s, "boot-after-power-cut")
	if err != nil {
		return err
	}
	msg, err := normal.Expect(`resume: (no image to resume: a restore of image (\w+) on /dev/vda started at an earlier boot and did not finish.*)`, 5*time.Minute)
	if err != nil {
		return err
	}
	if !strings.Contains(msg[1], "boot once with kjump.force=1") {
		return fmt.Errorf("the refusal does not say how to retry: %q", msg[1])
	}
	if err := expectAll(normal, time.Minute, "HIB resume rc=0", "HIB booted normally", "E2E exit rc=0"); err != nil {
		return err
	}
	if c := normal.Console(); strings.Contains(c, "starting the restore kernel") || strings.Contains(c, "kjump-helper:") {
		return fmt.Errorf("a normal boot started a restore kernel for an interrupted restore")
	}
	if err := normal.Wait(time.Minute); err != nil {
		return err
	}
	fmt.Printf("  %s: %s\n", s.Name, msg[1])

	forced, err := h.bootResumeWith(s, "resume-kjump-force", h.resumeAppend+" kjump.force=1")
	if err != nil {
		return err
	}
	if _, err := forced.Expect(`resume: retrying the interrupted restore of image `+msg[2]+` \(kjump.force=1\)`, 5*time.Minute); err != nil {
		return err
	}
	if _, err := forced.Expect(`resume: image \w+ verified and invalidated`, 5*time.Minute); err != nil {
		return err
	}
	if err := h.expectResumed(forced); err != nil {
		return err
	}

	again, err := h.bootResumeWith(s, "again-kjump-force", h.resumeAppend+" kjump.force=1")
	if err != nil {
		return err
	}
	if _, err := again.Expect(`resume: no image to resume: image \w+ on /dev/vda was already resumed or refused \(spent\), not interrupted: kjump.force=1 retries only an interrupted restore`, 5*time.Minute); err != nil {
		return err
	}
	if err := expectAll(again, time.Minute, "HIB resume rc=0", "HIB booted normally", "E2E exit rc=0"); err != nil {
		return err
	}
	return again.Wait(time.Minute)
}
