// Package sched runs the VM scenarios concurrently within a budget of host
// CPUs. Each job holds CPU tokens while it runs (the host cores its QEMU
// processes keep busy) and may name host resources it must not share;
// jobs start longest first so that the last one to finish is a short one.
package sched

import (
	"cmp"
	"io"
	"slices"
	"time"
)

// Job is one scenario.
type Job struct {
	Name string
	// CPUs is how many tokens the job holds while it runs; < 1 counts as
	// 1, and more than the budget runs the job with nothing else.
	CPUs int
	// Locks name host resources: jobs sharing one never run at once.
	Locks []string
	// Estimate orders the jobs: the longest starts first.
	Estimate time.Duration
	// Run runs the job and returns its report, written whole as it ends.
	Run func() string
}

// Run runs jobs, never holding more than tokens CPU tokens at once, and
// writes each job's report to w as the job ends (reports never interleave).
// Whenever a job ends, every waiting job that fits starts, longest first;
// with one token the jobs run one after another in the given order.
func Run(jobs []Job, tokens int, w io.Writer) {
	tokens = max(tokens, 1)
	pending := slices.Clone(jobs)
	if tokens > 1 {
		slices.SortStableFunc(pending, func(a, b Job) int { return cmp.Compare(b.Estimate, a.Estimate) })
	}
	type end struct {
		job    Job
		report string
	}
	ends := make(chan end)
	free, running := tokens, 0
	held := map[string]bool{}
	for len(pending) > 0 || running > 0 {
		for i := 0; i < len(pending); {
			j := pending[i]
			if cost(j, tokens) > free || slices.ContainsFunc(j.Locks, func(l string) bool { return held[l] }) {
				i++
				continue
			}
			pending = slices.Delete(pending, i, i+1)
			free -= cost(j, tokens)
			running++
			for _, l := range j.Locks {
				held[l] = true
			}
			go func() { ends <- end{j, j.Run()} }()
		}
		e := <-ends
		free += cost(e.job, tokens)
		running--
		for _, l := range e.job.Locks {
			delete(held, l)
		}
		io.WriteString(w, e.report)
	}
}

// cost is the tokens a job holds: at least 1, at most all of them.
func cost(j Job, tokens int) int { return min(max(j.CPUs, 1), tokens) }
