// Package progress prints a one-line progress meter (bytes, rate, ETA) for
// long image operations when stderr is a terminal, and nothing otherwise,
// so logs and scripts stay clean.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"
)

// Meter redraws at most every 200ms.
type Meter struct {
	w     io.Writer
	label string
	start time.Time
	mu    sync.Mutex
	last  time.Time
	shown bool
}

// New returns a meter writing to stderr if it is a terminal; otherwise a
// meter whose methods do nothing.
func New(label string) *Meter {
	if !IsTerminal(os.Stderr) {
		return &Meter{}
	}
	return &Meter{w: os.Stderr, label: label, start: time.Now()}
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Update matches image.WithProgress.
func (m *Meter) Update(done, total uint64) {
	if m.w == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if now.Sub(m.last) < 200*time.Millisecond && done < total {
		return
	}
	m.last = now
	m.shown = true
	fmt.Fprintf(m.w, "\r\033[K%s", Line(m.label, done, total, now.Sub(m.start)))
}

// Done ends the meter's line.
func (m *Meter) Done() {
	if m.w != nil && m.shown {
		fmt.Fprintln(m.w)
	}
}

// Line formats "label  done / total  rate  ETA".
func Line(label string, done, total uint64, elapsed time.Duration) string {
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	eta := "--"
	if rate > 0 && total >= done {
		eta = (time.Duration(float64(total-done) / rate * float64(time.Second))).Round(time.Second).String()
	}
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(done) / float64(total)
	}
	return fmt.Sprintf("%s %5.1f%%  %s / %s  %s/s  ETA %s", label, pct,
		humanize.IBytes(done), humanize.IBytes(total), humanize.IBytes(uint64(rate)), eta)
}
