// Package e2e holds the VM scenarios: end-to-end tests that boot the kjump
// test kernel (or Debian's stock kernel) under QEMU and assert on the serial
// console. They are built only with the "e2e" tag so that `go test ./...`
// stays fast; `make e2e` runs them and prints one SCENARIO line each.
//
// Writing a scenario: add a func(*S) error to the scenarios table in a
// *_test.go file with the e2e build tag. Build an initramfs with S.Initramfs,
// boot it with S.Start, assert with Machine.Expect, end with Machine.Wait.
// Return an error to fail; its first line is the reason shown by make e2e.
// A scenario with Pending set is only run when named in KJUMP_E2E.
// Scenarios run concurrently (see e2e/sched): set CPUs to the most vCPUs a
// scenario runs at once, and Exclusive if it changes host state outside its
// run directory.
package e2e
