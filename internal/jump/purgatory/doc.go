// Package purgatory holds the machine code that runs between two kernels:
// the purgatory the original kernel jumps into (it records the jump-back
// entry, backs up low memory and enters the helper kernel) and the stub a
// helper or restore kernel jumps through to return to the original.
//
// The bytes are generated from purgatory.S; purgatory_test.go re-assembles
// the source and fails if the committed bytes are stale.
package purgatory

//go:generate go run gen.go
