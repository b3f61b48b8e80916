package helper

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/handoff"
)

// defaultWatchdog applies when the instructions carry no helper.watchdog.
const defaultWatchdog = 60 * time.Second

// failedGrace is how long a worker that announced its failure may take to
// clean up (remove its unfinished image, unmount) before it is ended: on
// a target that stopped answering, cleaning up would wait for it too.
const failedGrace = 5 * time.Second

// killWait is how long PID 1 waits for a worker it killed to be gone, re-
// issuing a forced unmount of the target meanwhile, before it jumps back
// regardless.
const killWait = 20 * time.Second

// supervise runs the capture in a worker process and waits for its result
// under the progress watchdog. It returns the worker's result, or the
// error that says why there is none: a stall (naming the target), the
// worker running out of memory, or its death.
func supervise(in handoff.Instructions, res *handoff.Result) error {
	limit := defaultWatchdog
	if in.Watchdog > 0 {
		limit = time.Duration(in.Watchdog) * time.Second
	}
	if err := setOOMScoreAdj(os.Getpid(), -1000); err != nil {
		logf("cannot protect PID 1 from the OOM killer: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	w, err := startWorker(exe, []string{workerEnv + "=1"})
	if err != nil {
		return err
	}
	return w.watch(in, limit, res)
}

// worker is a running capture worker as PID 1 sees it.
type worker struct {
	cmd    *exec.Cmd
	msgs   chan message
	exited chan error
	tail   *tailWriter // the end of its stderr: a Go runtime's last words
}

// startWorker starts exe as a capture worker with environment env, its
// report pipe on file descriptor 3.
func startWorker(exe string, env []string) (*worker, error) {
	r, wp, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	w := &worker{msgs: make(chan message, 64), exited: make(chan error, 1), tail: &tailWriter{max: 4096}}
	w.cmd = &exec.Cmd{Path: exe, Args: []string{workerName}, Env: env,
		Stdin: nil, Stdout: os.Stdout, Stderr: io.MultiWriter(os.Stderr, w.tail), ExtraFiles: []*os.File{wp}}
	err = w.cmd.Start()
	wp.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("starting the capture worker %s: %w", exe, err)
	}
	if err := setOOMScoreAdj(w.cmd.Process.Pid, 1000); err != nil {
		logf("capture worker: oom_score_adj: %v", err)
	}
	go func() {
		defer close(w.msgs)
		defer r.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m message
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				w.msgs <- m
			}
		}
	}()
	go func() { w.exited <- w.cmd.Wait() }()
	return w, nil
}

// watch waits for the worker's result. Every message resets the watchdog;
// when it fires, or the worker dies without a result, the worker is ended
// and the error says why.
func (w *worker) watch(in handoff.Instructions, limit time.Duration, res *handoff.Result) error {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	var st watchState
	var failGrace <-chan time.Time // set once the worker said it failed
	for {
		select {
		case <-failGrace:
			// The worker knows it failed but is still cleaning up on a
			// target that does not answer: end it.
			w.end(0, processState(w.cmd.Process.Pid))
			if st.finishing {
				res.Details["commit_uncertain"] = "true"
			}
			return errors.New(st.failed)
		case m, ok := <-w.msgs:
			if !ok {
				w.msgs = nil // the pipe closed: the worker is ending
				continue
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(limit)
			if m.Kind == "result" && m.Result != nil {
				*res = mergeResult(*res, *m.Result)
				// The worker's own cleanup (sync, unmount) may still
				// stall on a dead target: give it the watchdog's time
				// to end, then end it.
				w.end(min(limit, 10*time.Second), "")
				if res.OK {
					return nil
				}
				return errors.New(res.Error)
			}
			st.note(m)
			if m.Kind == "failed" && failGrace == nil {
				logf("capture failed: %s; giving it %s to clean up", m.What, failedGrace)
				failGrace = time.After(failedGrace)
			}
		case err := <-w.exited:
			for m := range w.drained() { // lines still in the pipe
				if m.Kind == "result" && m.Result != nil {
					*res = mergeResult(*res, *m.Result)
					if res.OK {
						return nil
					}
					return errors.New(res.Error)
				}
				st.note(m)
			}
			if st.failed != "" {
				return errors.New(st.failed)
			}
			return w.died(err, in, &st)
		case <-timer.C:
			state := processState(w.cmd.Process.Pid)
			w.end(0, state)
			if st.finishing {
				res.Details["commit_uncertain"] = "true"
			}
			return stallError(in, limit, &st, state)
		}
	}
}

// drained is the rest of the worker's messages once it has exited.
func (w *worker) drained() <-chan message {
	if w.msgs == nil {
		c := make(chan message)
		close(c)
		return c
	}
	return w.msgs
}

// mergeResult takes the worker's report, keeping what PID 1 set.
func mergeResult(own, worker handoff.Result) handoff.Result {
	worker.CPUs = own.CPUs
	worker.Mode = own.Mode
	if worker.Details == nil {
		worker.Details = map[string]string{}
	}
	for k, v := range own.Details {
		if _, ok := worker.Details[k]; !ok {
			worker.Details[k] = v
		}
	}
	return worker
}

// watchState is what the watchdog knows of the capture's progress.
type watchState struct {
	step        string
	done, total uint64
	finishing   bool
	failed      string // the error the worker announced before its result
}

func (s *watchState) note(m message) {
	switch m.Kind {
	case "step":
		s.step = m.What
	case "progress":
		s.done, s.total = m.Done, m.Total
	case "finishing":
		s.finishing = true
	case "failed":
		if s.failed == "" {
			s.failed = m.What
		}
	}
}

func (s *watchState) where() string {
	switch {
	case s.finishing:
		return "after writing every chunk, while syncing and committing the image"
	case s.total > 0:
		return fmt.Sprintf("at %d%% (%s of %s of RAM saved)", s.done*100/s.total, humanize.IBytes(s.done), humanize.IBytes(s.total))
	case s.step != "":
		return "while " + s.step
	}
	return "before the capture started"
}

// end stops the worker: after grace (0: at once) it is killed, and a
// forced unmount of the target fails the requests it may be blocked in
// (a worker in uninterruptible sleep on a dead NFS server cannot be
// frozen, and the jump back freezes every task first). state is the
// worker's state when the watchdog fired, for the log.
func (w *worker) end(grace time.Duration, state string) {
	if grace > 0 {
		select {
		case <-w.exited:
			w.exited <- nil // keep it for died
			return
		case <-time.After(grace):
		}
	}
	if state != "" {
		logf("ending the capture worker (pid %d, state %s)", w.cmd.Process.Pid, state)
	}
	w.cmd.Process.Signal(syscall.SIGKILL)
	deadline := time.Now().Add(killWait)
	for {
		unix.Unmount(mountPoint, unix.MNT_FORCE)
		select {
		case <-w.exited:
			w.exited <- nil
			unix.Unmount(mountPoint, unix.MNT_DETACH)
			return
		case <-time.After(time.Second):
		}
		if time.Now().After(deadline) {
			logf("the capture worker (pid %d) is still there %s after SIGKILL, state %s; jumping back regardless",
				w.cmd.Process.Pid, killWait, processState(w.cmd.Process.Pid))
			unix.Unmount(mountPoint, unix.MNT_DETACH)
			return
		}
	}
}

// died explains a worker that ended without a result.
func (w *worker) died(err error, in handoff.Instructions, st *watchState) error {
	pid := w.cmd.Process.Pid
	var ee *exec.ExitError
	signaled := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled()
	if oom := oomKill(readKmsg(), pid); oom != "" || strings.Contains(w.tail.String(), "out of memory") {
		if oom == "" {
			oom = lastLine(w.tail.String())
		}
		return outOfMemory(in, st, oom)
	}
	what := "exited without a result"
	if err != nil {
		what = err.Error()
	}
	if signaled {
		what = "was killed by " + ee.Sys().(syscall.WaitStatus).Signal().String()
	}
	msg := fmt.Sprintf("the helper's capture worker %s %s", what, st.where())
	if t := lastLine(w.tail.String()); t != "" {
		msg += fmt.Sprintf(" (its last words: %q)", t)
	}
	return errors.New(msg)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSpace(s)
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
