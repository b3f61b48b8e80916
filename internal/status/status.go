// Package status keeps the last outcome of each kjump command, for
// 'hibernate status': hibernate and checkpoint record theirs under
// /var/lib/kjump (the system is up and its disks mounted when they end,
// also after a resume, when 'hibernate now' returns in the resumed system),
// resume under /run/kjump: at boot it runs in the initramfs, before the
// root filesystem is writable, and the initramfs hands /run on to the
// booted system (initramfs-tools and dracut both move it).
package status

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Where the records are.
var (
	Dir    = "/var/lib/kjump"
	RunDir = "/run/kjump"
)

// Record names.
const (
	Hibernate = "hibernate.json" // the last hibernate now/checkpoint, in Dir
	Resume    = "resume.json"    // this boot's resume, in RunDir
)

// Outcome is what one run ended with.
type Outcome struct {
	Command string    `json:"command"` // "hibernate now", "hibernate checkpoint", "resume"
	Result  string    `json:"result"`  // see the Result constants
	Time    time.Time `json:"time"`
	Target  string    `json:"target,omitempty"`
	ImageID string    `json:"image_id,omitempty"`
	// Detail says why, for refusals and failures, in the command's words.
	Detail string `json:"detail,omitempty"`
	// Figures are the run's numbers (RAM and image bytes, seconds, away).
	Figures map[string]string `json:"figures,omitempty"`
}

// Results.
const (
	Resumed   = "resumed"   // the machine came back from an image
	Committed = "committed" // checkpoint: image written, running on
	Sampled   = "sampled"   // checkpoint without a target: memory read, nothing written
	Refused   = "refused"   // a prerequisite failed; nothing was changed
	Failed    = "failed"    // started but did not complete
	None      = "none"      // resume: no image to resume, normal boot
	Disabled  = "disabled"  // resume: resume.policy = never or kjump.noresume
)

// Save writes o as dir/name, replacing the previous record atomically.
func Save(dir, name string, o Outcome) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// Load reads dir/name; nil, nil when there is none.
func Load(dir, name string) (*Outcome, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var o Outcome
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, err
	}
	return &o, nil
}
