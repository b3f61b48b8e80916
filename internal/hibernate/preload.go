package hibernate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/layout"
)

// Preloading loads the helper at boot so that 'hibernate now' jumps at
// once. The danger is a foreign image: any other tool (kexec -l,
// kexec-load.service) can replace ours, and a jump into an image loaded
// without KEXEC_PRESERVE_CONTEXT reboots the machine without a clean
// shutdown. The kernel does not say who loaded an image, but since Linux
// 6.6 it counts loads: kexec_load_limit_reboot drops by one at every
// kexec_load or kexec_file_load of a normal image (unloads included).
// kjump records the count right after its own load and trusts the loaded
// image only while the count is unchanged and the helper it would load now
// hashes the same. Without the counter there is no preloading.

// LoadLimitPath is the kernel's count of kexec loads still allowed.
var LoadLimitPath = "/proc/sys/kernel/kexec_load_limit_reboot"

// PreloadRecord is where the preload is described.
var PreloadRecord = "/run/kjump/preload.json"

// kexecLoadedPath says whether a (non-crash) kexec image is loaded.
var kexecLoadedPath = "/sys/kernel/kexec_loaded"

// guardLimit replaces an unlimited count, so that loads become countable
// (it can only go down; a billion loads are not going to run out).
const guardLimit = 1 << 30

// preload is what PreloadRecord holds.
type preload struct {
	BootID string    `json:"boot_id"`
	Hash   string    `json:"hash"`  // jump.Image.Hash of the loaded helper
	Limit  int64     `json:"limit"` // kexec_load_limit_reboot right after the load
	Loaded time.Time `json:"loaded"`
}

// ErrNoLoadCounter says the kernel cannot tell a foreign kexec load from
// ours, so preloading is refused.
var ErrNoLoadCounter = errors.New("this kernel has no kexec_load_limit_reboot (added in Linux 6.6), so kjump could not tell if another tool replaced a preloaded helper: the helper is loaded when you hibernate instead (about a second), which works the same")

// readLoadLimit returns the kernel's remaining kexec load count (-1:
// unlimited).
func readLoadLimit() (int64, error) {
	b, err := os.ReadFile(LoadLimitPath)
	if errors.Is(err, os.ErrNotExist) {
		return 0, ErrNoLoadCounter
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// guardLoads makes loads countable and returns the count.
func guardLoads() (int64, error) {
	n, err := readLoadLimit()
	if err != nil {
		return 0, err
	}
	if n == -1 {
		if err := os.WriteFile(LoadLimitPath, []byte(strconv.Itoa(guardLimit)), 0); err != nil {
			return 0, fmt.Errorf("limiting kexec loads to count them: %w", err)
		}
		n = guardLimit
	}
	if n < 2 {
		return 0, fmt.Errorf("kexec_load_limit_reboot is %d: the kernel allows no more kexec loads this boot", n)
	}
	return n, nil
}

func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

// Preload plans and loads the helper as a jump would, and records it.
func Preload(o Options) (*layout.HelperPlan, error) {
	_, plan, err := planHere(o)
	if err != nil {
		return nil, err
	}
	return plan, loadAndRecord(plan.Image)
}

// loadAndRecord loads im and writes the record that lets Jump use it.
func loadAndRecord(im jump.Image) error {
	if _, err := guardLoads(); err != nil {
		return err
	}
	os.Remove(PreloadRecord)
	if err := im.Load(); err != nil {
		return err
	}
	n, err := readLoadLimit()
	if err != nil {
		jump.Unload()
		return err
	}
	b, _ := json.Marshal(preload{BootID: bootID(), Hash: im.Hash(), Limit: n, Loaded: time.Now().UTC()})
	if err := os.MkdirAll(filepath.Dir(PreloadRecord), 0o700); err != nil {
		return err
	}
	return os.WriteFile(PreloadRecord, b, 0o600)
}

// Unpreload unloads a preloaded helper and forgets it.
func Unpreload() error {
	if _, err := os.Stat(PreloadRecord); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	os.Remove(PreloadRecord)
	return jump.Unload()
}

// preloaded reports whether im is loaded already, by kjump, unchanged
// since; why says why not when a preload record exists ("" without one).
func preloaded(im jump.Image) (ok bool, why string) {
	b, err := os.ReadFile(PreloadRecord)
	if err != nil {
		return false, ""
	}
	var p preload
	if err := json.Unmarshal(b, &p); err != nil {
		return false, "the preload record is unreadable"
	}
	switch n, err := readLoadLimit(); {
	case p.BootID != bootID():
		return false, "the preload record is from another boot"
	case err != nil:
		return false, err.Error()
	case n != p.Limit:
		return false, fmt.Sprintf("another kexec load or unload happened since the preload (kexec_load_limit_reboot went from %d to %d)", p.Limit, n)
	case strings.TrimSpace(readString(kexecLoadedPath)) != "1":
		return false, "no kexec image is loaded any more"
	case p.Hash != im.Hash():
		return false, "the helper, its initramfs or the machine's memory map changed since the preload"
	}
	return true, ""
}

func readString(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// PreloadState is what 'hibernate check' found of a preload.
type PreloadState int

const (
	PreloadNone     PreloadState = iota // nothing preloaded (or no record of it)
	PreloadOurs                         // the helper kjump loaded, unchanged since
	PreloadReplaced                     // recorded, but replaced or unloaded since
)

// PreloadStatus describes the preload for 'hibernate check': whether the
// kernel can guard one, and whether the helper is loaded and still ours.
func PreloadStatus() (state PreloadState, detail string, err error) {
	if _, err := readLoadLimit(); err != nil {
		return PreloadNone, "", err
	}
	b, rerr := os.ReadFile(PreloadRecord)
	if rerr != nil {
		return PreloadNone, "the helper is not preloaded: it is loaded when you hibernate (enable kjump-preload.service, or run 'hibernate preload')", nil
	}
	var p preload
	json.Unmarshal(b, &p)
	n, _ := readLoadLimit()
	if p.BootID != bootID() || n != p.Limit || strings.TrimSpace(readString(kexecLoadedPath)) != "1" {
		return PreloadReplaced, "the preloaded helper was replaced or unloaded since " + p.Loaded.Format(time.RFC3339) + ": hibernate loads it again", nil
	}
	return PreloadOurs, "helper preloaded at " + p.Loaded.Format(time.RFC3339) + ", guarded by kexec_load_limit_reboot", nil
}
