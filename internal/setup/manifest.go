package setup

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kjump/kjump/internal/atomicfile"
	"github.com/kjump/kjump/internal/bootonce"
)

// StateDir is where setup keeps its manifest and the files it replaced,
// so --undo can put them back.
const StateDir = "/var/lib/kjump/setup"

// Manifest records every file setup changed, in order.
type Manifest struct {
	Version int     `json:"version"`
	Entries []Entry `json:"entries"`
	// Dirs setup created (removed by undo when empty again), in order.
	Dirs []string `json:"dirs,omitempty"`
}

// Entry is one file setup created or changed.
type Entry struct {
	Path    string `json:"path"`
	Existed bool   `json:"existed"`
	Backup  string `json:"backup,omitempty"` // file in StateDir/files holding the old content
	Mode    uint32 `json:"mode,omitempty"`   // old mode bits
	Link    string `json:"link,omitempty"`   // old symlink target (Backup empty)
	After   string `json:"after"`            // state setup left: "sha256:..." or "link:TARGET"
	By      string `json:"by"`               // what changed it: "hibernate setup", "update-grub", ...
	// Regenerate rebuilds a generated file (grub.cfg, an initramfs) whose
	// content changed again after setup, when undo cannot restore the old
	// bytes without losing that later change.
	Regenerate []string `json:"regenerate,omitempty"`
	// Owned files are kjump's own (the helper kernel, its initramfs, the
	// GRUB drop-in): undo removes them whatever they hold now.
	Owned bool `json:"owned,omitempty"`
}

func (o *Options) manifestPath() string { return o.path(filepath.Join(o.stateDir(), "manifest.json")) }

func (o *Options) stateDir() string {
	if o.StateDir != "" {
		return o.StateDir
	}
	return StateDir
}

func (o *Options) loadManifest() (*Manifest, error) {
	b, err := os.ReadFile(o.manifestPath())
	if errors.Is(err, fs.ErrNotExist) {
		return &Manifest{Version: 1}, nil
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil || m.Version != 1 {
		return nil, fmt.Errorf("%s is not a manifest of hibernate setup (%v): move it away, then restore the files it lists by hand", o.manifestPath(), err)
	}
	return &m, nil
}

func (o *Options) saveManifest(m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(o.manifestPath(), append(b, '\n'), 0o600)
}

// state is a file's content identity: "sha256:HEX", "link:TARGET", or ""
// when it does not exist.
func state(p string) (string, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(p)
		return "link:" + t, err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", p)
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// tracker backs up files before a step may change them and records in
// the manifest those that it did change.
type tracker struct {
	o      *Options
	m      *Manifest
	before map[string]string // path (root-relative) -> state before
	backup map[string]string // path -> backup name
	mode   map[string]uint32
	dirs   []string // directories that did not exist before
}

func (o *Options) track(m *Manifest, paths ...string) (*tracker, error) {
	t := &tracker{o: o, m: m, before: map[string]string{}, backup: map[string]string{}, mode: map[string]uint32{}}
	for _, p := range paths {
		if err := t.add(p); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// add snapshots p (an absolute path on the target system).
func (t *tracker) add(p string) error {
	if _, ok := t.before[p]; ok {
		return nil
	}
	for d := filepath.Dir(p); d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Lstat(t.o.path(d)); errors.Is(err, fs.ErrNotExist) {
			t.dirs = append([]string{d}, t.dirs...)
		}
	}
	st, err := state(t.o.path(p))
	if err != nil {
		return err
	}
	t.before[p] = st
	if st == "" || t.m.recorded(p) {
		return nil // nothing to keep, or the first setup already kept the original
	}
	if strings.HasPrefix(st, "link:") {
		return nil // the target is in before
	}
	fi, err := os.Stat(t.o.path(p))
	if err != nil {
		return err
	}
	t.mode[p] = uint32(fi.Mode().Perm())
	name := fmt.Sprintf("%03d-%s", len(t.m.Entries)+len(t.backup), strings.ReplaceAll(strings.TrimPrefix(p, "/"), "/", "_"))
	dst := t.o.path(filepath.Join(t.o.stateDir(), "files", name))
	if err := copyFile(t.o.path(p), dst, 0o600); err != nil {
		return fmt.Errorf("backing up %s: %w", p, err)
	}
	t.backup[p] = name
	return nil
}

// done records what changed; by names the command that did it. It
// returns the changed paths.
func (t *tracker) done(by string, regenerate []string, owned bool) ([]string, error) {
	var changed []string
	for _, d := range t.dirs {
		if _, err := os.Lstat(t.o.path(d)); err == nil && !contains(t.m.Dirs, d) {
			t.m.Dirs = append(t.m.Dirs, d)
		}
	}
	for p, old := range t.before {
		now, err := state(t.o.path(p))
		if err != nil {
			return changed, err
		}
		if now == old {
			if name := t.backup[p]; name != "" {
				os.Remove(t.o.path(filepath.Join(t.o.stateDir(), "files", name)))
			}
			continue
		}
		changed = append(changed, p)
		if i := t.m.index(p); i >= 0 {
			t.m.Entries[i].After = now // an earlier setup kept the original
			continue
		}
		e := Entry{Path: p, Existed: old != "", Backup: t.backup[p], Mode: t.mode[p], After: now, By: by, Regenerate: regenerate, Owned: owned && old == ""}
		if strings.HasPrefix(old, "link:") {
			e.Link = strings.TrimPrefix(old, "link:")
		}
		t.m.Entries = append(t.m.Entries, e)
	}
	sortStrings(changed)
	return changed, nil
}

// discard drops the backups of a step that did not run.
func (t *tracker) discard() {
	for _, name := range t.backup {
		os.Remove(t.o.path(filepath.Join(t.o.stateDir(), "files", name)))
	}
}

func (m *Manifest) index(p string) int {
	for i, e := range m.Entries {
		if e.Path == p {
			return i
		}
	}
	return -1
}

func (m *Manifest) recorded(p string) bool { return m.index(p) >= 0 }

// Undo puts back every file the manifest lists, newest first: a file
// setup created is removed, a changed one gets its old content back. A
// generated file changed again since (a kernel update rewrote grub.cfg)
// is regenerated instead, and any other file changed since is left alone
// and named. The state directory goes when everything was restored.
func Undo(o Options) error {
	o.defaults()
	m, err := o.loadManifest()
	if err != nil {
		return err
	}
	if len(m.Entries) == 0 && len(m.Dirs) == 0 {
		fmt.Fprintf(o.Out, "nothing to undo: %s lists no change by hibernate setup\n", o.stateDir()+"/manifest.json")
		return nil
	}
	verb := ""
	if o.DryRun {
		verb = "would "
	}
	var left []string
	var regen [][]string
	for i := len(m.Entries) - 1; i >= 0; i-- {
		e := m.Entries[i]
		p := o.path(e.Path)
		now, err := state(p)
		if err != nil {
			return err
		}
		switch {
		case now == e.After || e.Owned && !e.Existed:
		case e.Regenerate != nil:
			if !containsCmd(regen, e.Regenerate) {
				regen = append(regen, e.Regenerate)
			}
			fmt.Fprintf(o.Out, "  %s changed again since setup (%s): %srun %s instead of restoring it\n", e.Path, orGone(now), verb, strings.Join(e.Regenerate, " "))
			continue
		default:
			left = append(left, e.Path)
			fmt.Fprintf(o.Out, "  %s changed since setup: left as it is", e.Path)
			if e.Backup != "" {
				fmt.Fprintf(o.Out, "; its content before setup is in %s", filepath.Join(o.stateDir(), "files", e.Backup))
			}
			fmt.Fprintln(o.Out)
			continue
		}
		if !e.Existed {
			fmt.Fprintf(o.Out, "  %sremove %s\n", verb, e.Path)
			if !o.DryRun {
				if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			continue
		}
		fmt.Fprintf(o.Out, "  %srestore %s\n", verb, e.Path)
		if o.DryRun {
			continue
		}
		if e.Link != "" {
			os.Remove(p)
			if err := os.Symlink(e.Link, p); err != nil {
				return err
			}
			continue
		}
		if err := copyFile(o.path(filepath.Join(o.stateDir(), "files", e.Backup)), p, fs.FileMode(e.Mode)); err != nil {
			return fmt.Errorf("restoring %s: %w", e.Path, err)
		}
	}
	// What 'hibernate now' wrote for the direct restore setup enabled.
	did, err := bootonce.Uninstall(o.Root, o.DryRun)
	for _, d := range did {
		fmt.Fprintf(o.Out, "  %s%s (hibernate now, for the direct restore)\n", verb, d)
	}
	if err != nil {
		return err
	}
	for _, c := range regen {
		if o.DryRun {
			continue
		}
		if err := o.Run(c[0], c[1:]...); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(c, " "), err)
		}
	}
	for i := len(m.Dirs) - 1; i >= 0; i-- {
		if o.DryRun {
			fmt.Fprintf(o.Out, "  would remove directory %s if empty\n", m.Dirs[i])
			continue
		}
		if os.Remove(o.path(m.Dirs[i])) == nil {
			fmt.Fprintf(o.Out, "  removed directory %s\n", m.Dirs[i])
		}
	}
	if o.DryRun {
		return nil
	}
	if len(left) > 0 {
		return fmt.Errorf("%d file(s) changed since setup were left as they are (%s); the manifest and backups stay in %s", len(left), strings.Join(left, ", "), o.stateDir())
	}
	if err := os.RemoveAll(o.path(o.stateDir())); err != nil {
		return err
	}
	// /var/lib/kjump when setup made it and nothing else is in it.
	os.Remove(o.path(filepath.Dir(o.stateDir())))
	fmt.Fprintf(o.Out, "undone: every file hibernate setup changed is as it was before\n")
	return nil
}

func orGone(s string) string {
	if s == "" {
		return "removed"
	}
	return "rewritten"
}

func containsCmd(cs [][]string, c []string) bool {
	for _, x := range cs {
		if strings.Join(x, "\x00") == strings.Join(c, "\x00") {
			return true
		}
	}
	return false
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// copyFile copies src to dst through a temporary file and a rename.
func copyFile(src, dst string, mode fs.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return atomicfile.Write(dst, b, mode)
}
