package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/hibernate"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/layout"
	"github.com/kjump/kjump/internal/sleepconf"
	"github.com/kjump/kjump/internal/status"
	"github.com/kjump/kjump/internal/storage"
	"github.com/kjump/kjump/internal/sysinfo"
)

func init() {
	commands.Register(cli.Command{Name: "status", Summary: "show the targets and their images, the preload, the reservation and the last outcomes", Run: runStatus})
}

// statusReport is 'hibernate status': what is there now, read only.
type statusReport struct {
	Config      string         `json:"config"`
	Targets     []targetStatus `json:"targets"`
	Reservation string         `json:"reservation"`
	Preload     string         `json:"preload"`
	// Logind is whether logind offers hibernation (CanHibernate), as
	// 'hibernate check --update-logind' last decided.
	Logind        string          `json:"logind"`
	LastHibernate *status.Outcome `json:"last_hibernate"`
	LastResume    *status.Outcome `json:"last_resume"` // this boot's, from the initramfs
}

type targetStatus struct {
	Target  string    `json:"target"`
	Image   string    `json:"image"` // committed, invalidated, none, or why it cannot be read
	ID      string    `json:"id,omitempty"`
	Mode    string    `json:"mode,omitempty"` // now (hibernation) or checkpoint
	Created time.Time `json:"created,omitempty"`
	Age     string    `json:"age,omitempty"`
	Kernel  string    `json:"kernel,omitempty"`
	RAM     uint64    `json:"ram_bytes,omitempty"`
	Size    int64     `json:"image_bytes,omitempty"`
}

func runStatus(args []string) error {
	cfg, err := loadConfig(args)
	asJSON := false
	if err == nil {
		fs := commands.FlagSet("status", "")
		configFlag(fs)
		fs.BoolVar(&asJSON, "json", false, "print JSON")
		err = commands.ParseNone(fs, args)
	}
	if err != nil {
		if hasJSONFlag(args) && !errors.Is(err, flag.ErrHelp) {
			cli.WriteJSONError(os.Stdout, err)
		}
		return err
	}
	rep := statusReport{Config: orNone(cfg.Path), Preload: preloadState(), Logind: logindState()}
	for _, t := range cfg.Targets {
		rep.Targets = append(rep.Targets, inspectTarget(t, time.Now()))
	}
	reserve, _ := cfg.ReserveBytes()
	rep.Reservation = reservationState(reserve)
	rep.LastHibernate = loadOutcome(status.Dir, status.Hibernate)
	rep.LastResume = thisBootsResume(rep.LastHibernate, loadOutcome(status.RunDir, status.Resume))
	if asJSON {
		e := json.NewEncoder(os.Stdout)
		e.SetIndent("", "  ")
		return e.Encode(rep)
	}
	printStatus(os.Stdout, rep, time.Now())
	return nil
}

// thisBootsResume is the resume that started the running system. After a
// resume the machine runs on in the boot that hibernated, whose /run holds
// that boot's own resume record (older than the hibernation; the resuming
// boot's memory was replaced): the resume that brought it back is then the
// last hibernate's "resumed".
func thisBootsResume(hib, res *status.Outcome) *status.Outcome {
	if hib == nil || res == nil || hib.Result != status.Resumed || !res.Time.Before(hib.Time) {
		return res
	}
	return &status.Outcome{Command: "resume", Result: status.Resumed, Time: hib.Time, Target: hib.Target, ImageID: hib.ImageID}
}

func hasJSONFlag(args []string) bool {
	for _, a := range args {
		if a == "--json" || a == "-json" {
			return true
		}
	}
	return false
}

// inspectTarget reads what a target holds, changing nothing.
func inspectTarget(spec string, now time.Time) targetStatus {
	ts := targetStatus{Target: spec}
	t, err := storage.Open(spec)
	if err != nil {
		ts.Image = "unreachable: " + cli.Message(err)
		return ts
	}
	if c, ok := t.(io.Closer); ok {
		defer c.Close()
	}
	r, err := image.OpenTarget(t)
	switch {
	case errors.Is(err, image.ErrNotCommitted):
		ts.Image = "none"
		return ts
	case err != nil:
		ts.Image = "unreadable: " + cli.Message(err)
		return ts
	}
	defer r.Close()
	info := r.Info()
	ts.Image, ts.ID, ts.Created, ts.Kernel = info.Status, info.ID, info.Created, info.Metadata.KernelRelease
	ts.Mode, ts.RAM, ts.Size = info.Metadata.Extra["mode"], info.RAMBytes, info.ImageBytes
	if !info.Created.IsZero() {
		ts.Age = now.Sub(info.Created).Round(time.Second).String()
	}
	return ts
}

func preloadState() string {
	state, detail, err := hibernate.PreloadStatus()
	switch {
	case errors.Is(err, hibernate.ErrNoLoadCounter):
		return "not available on this kernel (no kexec_load_limit_reboot): the helper is loaded when you hibernate"
	case err != nil:
		return "unknown: " + err.Error()
	case state == hibernate.PreloadOurs:
		return "loaded: " + detail
	}
	return detail
}

func reservationState(reserve uint64) string {
	cmd, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return "unknown: " + err.Error()
	}
	iomem, err := sysinfo.ReadIOMem()
	if err != nil {
		return "unknown: " + err.Error()
	}
	res, err := layout.FindReservation(string(cmd), iomem, reserve)
	if err != nil {
		return "none usable: " + err.Error()
	}
	return fmt.Sprintf("%v (%s), %d MiB", res.Range, res.Source, res.Size()>>20)
}

func logindState() string {
	allowed, checked := sleepconf.HibernationAllowed()
	switch {
	case !checked:
		return "not checked since boot (" + sleepconf.RuntimeDropIn + " absent): logind denies hibernation while kjump's drop-in is installed"
	case allowed:
		return "offers hibernation (the last check passed)"
	}
	return "does not offer hibernation (the last check failed; see " + sleepconf.RuntimeDropIn + ")"
}

func printStatus(w io.Writer, rep statusReport, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "config:\t%s\n", rep.Config)
	if len(rep.Targets) == 0 {
		fmt.Fprintf(tw, "targets:\tnone configured\n")
	}
	for _, t := range rep.Targets {
		line := t.Image
		if t.ID != "" {
			line = fmt.Sprintf("%s image %s (%s), created %s (%s ago), Linux %s", t.Image, t.ID, modeName(t.Mode),
				t.Created.Local().Format("2006-01-02 15:04:05"), t.Age, t.Kernel)
		}
		fmt.Fprintf(tw, "target %s:\t%s\n", t.Target, line)
	}
	fmt.Fprintf(tw, "reservation:\t%s\n", rep.Reservation)
	fmt.Fprintf(tw, "preload:\t%s\n", rep.Preload)
	fmt.Fprintf(tw, "logind:\t%s\n", rep.Logind)
	fmt.Fprintf(tw, "last hibernate:\t%s\n", outcomeLine(rep.LastHibernate, now))
	fmt.Fprintf(tw, "resume this boot:\t%s\n", outcomeLine(rep.LastResume, now))
	tw.Flush()
}

func modeName(m string) string {
	switch m {
	case "now":
		return "hibernation"
	case "":
		return "mode unknown"
	}
	return m
}

func outcomeLine(o *status.Outcome, now time.Time) string {
	if o == nil {
		return "none recorded"
	}
	if o.Time.IsZero() {
		return o.Result + ": " + o.Detail
	}
	s := fmt.Sprintf("%s: %s at %s (%s ago)", o.Command, o.Result, o.Time.Local().Format("2006-01-02 15:04:05"), now.Sub(o.Time).Round(time.Second))
	if o.Target != "" {
		s += ", target " + o.Target
	}
	if o.ImageID != "" {
		s += ", image " + o.ImageID
	}
	var figs []string
	for _, k := range []string{"away", "ram_bytes", "image_bytes", "helper_seconds", "hibernated_at"} {
		if v, ok := o.Figures[k]; ok {
			figs = append(figs, k+"="+v)
		}
	}
	if len(figs) > 0 {
		s += "; " + strings.Join(figs, " ")
	}
	if o.Detail != "" {
		s += "; " + o.Detail
	}
	return s
}

// loadOutcome reads a record; one that cannot be read becomes its reason.
func loadOutcome(dir, name string) *status.Outcome {
	o, err := status.Load(dir, name)
	switch {
	case errors.Is(err, fs.ErrPermission):
		return &status.Outcome{Result: "unknown", Detail: "only root can read " + filepath.Join(dir, name)}
	case err != nil:
		return &status.Outcome{Result: "unknown", Detail: cli.Message(err)}
	}
	return o
}
