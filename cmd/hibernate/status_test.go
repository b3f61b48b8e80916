package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/status"
	"github.com/kjump/kjump/internal/storage"
)

func captureStdout(t *testing.T, f func()) string {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	f()
	os.Stdout = old
	w.Close()
	return string(<-done)
}

// status shows each target's image (id, mode, age), one target without an
// image and one unreachable, and the recorded outcomes.
func TestStatus(t *testing.T) {
	withImage, empty := t.TempDir(), t.TempDir()
	mem := bytes.Repeat([]byte("status "), 100000)
	mem = mem[:len(mem)/4096*4096]
	tg, _ := storage.Open(withImage)
	created := time.Now().Add(-90 * time.Minute).UTC()
	md := image.Metadata{KernelRelease: "6.1.0", Created: created, Extra: map[string]string{"mode": "now"}}
	_, err := image.WriteTarget(context.Background(), tg, image.RangeSource(bytes.NewReader(mem), []image.Range{{End: uint64(len(mem))}}), md)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "k.conf")
	os.WriteFile(conf, []byte(`targets = ["`+withImage+`", "`+empty+`", "/dev/no-such-kjump-disk"]`+"\n"), 0o644)
	status.Save(status.Dir, status.Hibernate, status.Outcome{Command: "hibernate now", Result: status.Resumed, Time: time.Now().Add(-time.Hour),
		Target: withImage, ImageID: "abc", Figures: map[string]string{"away": "5m0s"}})
	status.Save(status.RunDir, status.Resume, status.Outcome{Command: "resume", Result: status.None, Time: time.Now()})

	var rep statusReport
	out := captureStdout(t, func() { err = runStatus([]string{"--config", conf, "--json"}) })
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(rep.Targets) != 3 {
		t.Fatalf("%+v", rep.Targets)
	}
	a, b, c := rep.Targets[0], rep.Targets[1], rep.Targets[2]
	if a.Image != "committed" || a.ID == "" || a.Mode != "now" || !strings.HasPrefix(a.Age, "1h30m") || a.Kernel != "6.1.0" {
		t.Errorf("target with an image: %+v", a)
	}
	if b.Image != "none" || !strings.HasPrefix(c.Image, "unreachable: ") {
		t.Errorf("empty %+v, unreachable %+v", b, c)
	}
	if rep.LastHibernate == nil || rep.LastHibernate.Result != status.Resumed || rep.LastResume == nil || rep.LastResume.Result != status.None {
		t.Errorf("outcomes: %+v %+v", rep.LastHibernate, rep.LastResume)
	}
	text := captureStdout(t, func() { err = runStatus([]string{"--config", conf}) })
	for _, want := range []string{"committed image " + a.ID + " (hibernation)", "(1h30m", "last hibernate:", "hibernate now: resumed at", "away=5m0s", "resume this boot:"} {
		if !strings.Contains(text, want) {
			t.Errorf("status text lacks %q:\n%s", want, text)
		}
	}
}

// With --json, an error that prevents the command prints JSON too.
func TestJSONErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.conf")
	for _, run := range []func([]string) error{runCheck, runStatus} {
		var err error
		out := captureStdout(t, func() { err = run([]string{"--json", "--config", missing}) })
		var j struct {
			Error      string `json:"error"`
			ExitStatus int    `json:"exit_status"`
		}
		if json.Unmarshal([]byte(out), &j) != nil || j.ExitStatus != 2 || !strings.Contains(j.Error, "no such file") || err == nil {
			t.Errorf("%q (%v)", out, err)
		}
	}
}

// After a resume, /run/kjump/resume.json is the record of the boot that
// hibernated (it ran before the hibernation): status shows the resume.
func TestThisBootsResume(t *testing.T) {
	before := &status.Outcome{Command: "resume", Result: "none", Time: time.Unix(100, 0)}
	hib := &status.Outcome{Command: "hibernate now", Result: status.Resumed, Time: time.Unix(200, 0), Target: "/dev/vdb", ImageID: "ab"}
	if got := thisBootsResume(hib, before); got.Result != status.Resumed || got.ImageID != "ab" || !got.Time.Equal(hib.Time) {
		t.Fatalf("after a resume: %+v", got)
	}
	later := &status.Outcome{Command: "resume", Result: "none", Time: time.Unix(300, 0)}
	if got := thisBootsResume(hib, later); got != later {
		t.Fatalf("a later boot's own record replaced: %+v", got)
	}
	if got := thisBootsResume(nil, before); got != before {
		t.Fatalf("no hibernate record: %+v", got)
	}
}
