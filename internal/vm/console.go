package vm

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TailLines is how many console lines an error carries.
const TailLines = 40

// console collects the serial output line by line, logs it with host
// timestamps and lets Expect wait for lines.
type console struct {
	path  string
	log   io.Writer
	start time.Time

	mu      sync.Mutex
	all     []string
	cursor  int           // lines before it were consumed by Expect
	changed chan struct{} // closed and replaced on every new line
	done    bool
	exitMsg func() string // extra detail for "QEMU exited" errors
}

func newConsole(log io.Writer, path string) *console {
	return &console{path: path, log: log, start: time.Now(), changed: make(chan struct{})}
}

// read consumes QEMU's serial output until EOF. Carriage returns are dropped
// and a final partial line still counts as a line. The raw output goes to
// the log; Expect sees lines with kernel messages spliced out (see splicer).
func (c *console) read(r io.Reader, onLine func(string)) {
	br := bufio.NewReaderSize(r, 64<<10)
	var sp splicer
	add := func(lines []string) {
		for _, line := range lines {
			c.mu.Lock()
			c.all = append(c.all, line)
			close(c.changed)
			c.changed = make(chan struct{})
			c.mu.Unlock()
			onLine(line)
		}
	}
	for {
		s, err := br.ReadString('\n')
		if s != "" {
			line := strings.TrimRight(strings.ReplaceAll(s, "\r", ""), "\n")
			fmt.Fprintf(c.log, "[%9.3f] %s\n", time.Since(c.start).Seconds(), line)
			add(sp.line(line))
		}
		if err != nil {
			break
		}
	}
	add(sp.flush())
	c.mu.Lock()
	c.done = true
	close(c.changed)
	c.mu.Unlock()
}

func (c *console) expect(rx *regexp.Regexp, what string, timeout time.Duration, exited <-chan struct{}) ([]string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for i := c.cursor; i < len(c.all); i++ {
			if sm := rx.FindStringSubmatch(c.all[i]); sm != nil {
				c.cursor = i + 1
				c.mu.Unlock()
				return sm, nil
			}
		}
		c.cursor = len(c.all)
		done, changed := c.done, c.changed
		c.mu.Unlock()
		if done {
			<-exited // QEMU's exit status is known by then
			extra := ""
			if c.exitMsg != nil {
				extra = c.exitMsg()
			}
			return nil, fmt.Errorf("vm: QEMU exited before %q appeared%s%s", what, extra, c.tail(TailLines))
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, fmt.Errorf("vm: %q did not appear within %v%s", what, timeout, c.tail(TailLines))
		}
	}
}

// tail formats the last n lines for an error message, with the log path.
func (c *console) tail(n int) string {
	lines := c.lines()
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("\n--- console %s, last %d lines:\n%s\n---", c.path, len(lines), strings.Join(lines, "\n"))
}

func (c *console) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.all...)
}

func (c *console) text() string {
	l := c.lines()
	if len(l) == 0 {
		return ""
	}
	return strings.Join(l, "\n") + "\n"
}

// kernelStamp is the "[    1.570070] " prefix printk puts on console lines.
var kernelStamp = regexp.MustCompile(`\[\s*\d+\.\d{6}\] `)

// splicer undoes printk cutting into a user-space line on the serial
// console: "wrong key or pass[    1.57] resume used greatest stack depth"
// followed by "phrase" becomes the kernel line and "wrong key or passphrase".
// The kernel starts its message mid-line and ends it with a newline, so the
// user text resumes on the next line that is not a kernel message.
type splicer struct {
	head    string // user text cut off by a kernel message
	holding bool
}

func (sp *splicer) line(line string) []string {
	loc := kernelStamp.FindStringIndex(line)
	if loc != nil && loc[0] > 0 {
		sp.head += line[:loc[0]]
		sp.holding = true
		return []string{line[loc[0]:]}
	}
	if !sp.holding || loc != nil {
		return []string{line}
	}
	joined := sp.head + line
	sp.head, sp.holding = "", false
	return []string{joined}
}

// flush returns a cut-off head that never got its continuation.
func (sp *splicer) flush() []string {
	if !sp.holding {
		return nil
	}
	h := sp.head
	sp.head, sp.holding = "", false
	return []string{h}
}

// Mark is a phase in a console log: its name and the console line that
// starts it ("" = QEMU's start, time 0).
type Mark struct{ Name, Line string }

// MarkTimes reads a console log as Machine writes it ("[host seconds]
// line") and returns, for each mark, the time of the first line holding
// it, or -1.
func MarkTimes(console []byte, marks []Mark) []float64 {
	at := make([]float64, len(marks))
	for i := range at {
		at[i] = -1
	}
	if len(marks) > 0 && marks[0].Line == "" {
		at[0] = 0
	}
	for _, l := range strings.Split(string(console), "\n") {
		ts, text, ok := strings.Cut(strings.TrimPrefix(l, "["), "] ")
		if !ok {
			continue
		}
		t, err := strconv.ParseFloat(strings.TrimSpace(ts), 64)
		if err != nil {
			continue
		}
		for i, mk := range marks {
			if at[i] < 0 && mk.Line != "" && strings.Contains(text, mk.Line) {
				at[i] = t
			}
		}
	}
	return at
}

// Phases is "name 1.2s, ..." for each mark found whose next mark was
// found too.
func Phases(marks []Mark, at []float64) string {
	var out []string
	for i := 0; i+1 < len(marks); i++ {
		if at[i] >= 0 && at[i+1] >= 0 {
			out = append(out, fmt.Sprintf("%s %.1fs", marks[i].Name, at[i+1]-at[i]))
		}
	}
	return strings.Join(out, ", ")
}
