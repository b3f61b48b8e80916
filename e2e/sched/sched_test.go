package sched

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// gated runs jobs whose Run blocks until the test ends them, so each step
// can check exactly which jobs are running.
type gated struct {
	t       *testing.T
	started chan string
	gates   map[string]chan struct{}
	out     reports
	done    chan struct{}
}

// reports records each Write, which must be one whole report.
type reports struct {
	mu     sync.Mutex
	writes []string
}

func (r *reports) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func start(t *testing.T, tokens int, jobs ...Job) *gated {
	g := &gated{t: t, started: make(chan string, len(jobs)), gates: map[string]chan struct{}{}, done: make(chan struct{})}
	for i := range jobs {
		name := jobs[i].Name
		gate := make(chan struct{})
		g.gates[name] = gate
		jobs[i].Run = func() string {
			g.started <- name
			<-gate
			return "SCENARIO " + name + ": PASS\n  logs: " + name + "\n"
		}
	}
	go func() { Run(jobs, tokens, &g.out); close(g.done) }()
	return g
}

// expectStarted waits for exactly these jobs to start, in any order.
func (g *gated) expectStarted(names ...string) {
	g.t.Helper()
	var got []string
	for range names {
		select {
		case n := <-g.started:
			got = append(got, n)
		case <-time.After(5 * time.Second):
			g.t.Fatalf("started %v, want %v", got, names)
		}
	}
	select {
	case n := <-g.started:
		g.t.Fatalf("%s started too, with %v", n, names)
	case <-time.After(50 * time.Millisecond):
	}
	slices.Sort(got)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		g.t.Fatalf("started %v, want %v", got, names)
	}
}

func (g *gated) end(name string) { close(g.gates[name]) }

// finish waits for Run to return and checks the reports came whole, in
// the order the jobs ended.
func (g *gated) finish(order ...string) {
	g.t.Helper()
	<-g.done
	var want []string
	for _, n := range order {
		want = append(want, "SCENARIO "+n+": PASS\n  logs: "+n+"\n")
	}
	if !slices.Equal(g.out.writes, want) {
		g.t.Fatalf("reports %q, want %q", strings.Join(g.out.writes, ""), strings.Join(want, ""))
	}
}

func TestTokensLongestFirstAndAlone(t *testing.T) {
	g := start(t, 2,
		Job{Name: "short1", CPUs: 1, Estimate: 5 * time.Minute},
		Job{Name: "mid1a", Estimate: 20 * time.Minute}, // CPUs 0 counts as 1
		Job{Name: "big3", CPUs: 3, Estimate: 10 * time.Minute},
		Job{Name: "long2", CPUs: 2, Estimate: 30 * time.Minute},
		Job{Name: "mid1b", CPUs: 1, Estimate: 20 * time.Minute},
	)
	g.expectStarted("long2") // the longest, with every token
	g.end("long2")
	g.expectStarted("mid1a", "mid1b")
	g.end("mid1a")
	g.expectStarted("short1") // big3 needs both tokens; short1 fits the free one
	g.end("mid1b")
	g.expectStarted() // one token free, big3 waits
	g.end("short1")
	g.expectStarted("big3") // more than the budget: alone
	g.end("big3")
	g.finish("long2", "mid1a", "mid1b", "short1", "big3")
}

func TestLocks(t *testing.T) {
	g := start(t, 4,
		Job{Name: "deb-a", Locks: []string{"make-deb"}},
		Job{Name: "deb-b", Locks: []string{"make-deb"}},
		Job{Name: "other"},
	)
	g.expectStarted("deb-a", "other")
	g.end("other")
	g.expectStarted()
	g.end("deb-a")
	g.expectStarted("deb-b")
	g.end("deb-b")
	g.finish("other", "deb-a", "deb-b")
}

func TestOneTokenKeepsOrder(t *testing.T) {
	g := start(t, 1,
		Job{Name: "first", Estimate: time.Minute},
		Job{Name: "second", CPUs: 2, Estimate: time.Hour},
	)
	g.expectStarted("first")
	g.end("first")
	g.expectStarted("second")
	g.end("second")
	g.finish("first", "second")
}
