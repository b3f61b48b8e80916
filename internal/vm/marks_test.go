package vm

import (
	"reflect"
	"testing"
)

func TestMarkTimesAndPhases(t *testing.T) {
	console := []byte("[0.50] SeaBIOS\n[2.25] kjump-helper: direct restore: up\n[2.40] kjump-helper: restoring 1 GiB\n[2.90] kjump-helper: restoring again\nnot a timestamp\n[8.10] hibernate: RESUMED\n")
	marks := []Mark{{Name: "kernel boot"}, {Name: "checks", Line: "direct restore"}, {Name: "restore", Line: "kjump-helper: restoring"}, {Name: "jump back", Line: "jumping into"}, {Line: "hibernate: RESUMED"}}
	at := MarkTimes(console, marks)
	if want := []float64{0, 2.25, 2.40, -1, 8.10}; !reflect.DeepEqual(at, want) {
		t.Fatalf("MarkTimes = %v, want %v (first occurrence, -1 when absent)", at, want)
	}
	if got, want := Phases(marks, at), "kernel boot 2.2s, checks 0.1s"; got != want {
		t.Errorf("Phases = %q, want %q", got, want)
	}
}
