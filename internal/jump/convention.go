package jump

import "fmt"

// Convention is the kexec-jump calling convention of a kernel's
// relocate_kernel: it decides whether the way back needs kjump's stub to
// reload the kernel's GDT.
type Convention int

const (
	// ConventionClassic: Linux up to 6.13. The callee sees its return
	// address at 0(%rsp); before 6.13 the kernel returns without
	// reloading its GDT and needs the jump-back stub.
	ConventionClassic Convention = iota
	// ConventionReworked: Linux 6.14+. The caller also pushes the callee's
	// own entry (8(%rsp)) and restores its GDT itself.
	ConventionReworked
)

// conventionTokens are the stable names on the wire (the handoff area);
// String is for people.
var conventionTokens = map[Convention]string{ConventionClassic: "classic", ConventionReworked: "reworked"}

// NeedsSavedGDT reports whether the way back must reload the kernel's GDT
// from its saved_context (the kernel does not do it itself).
func (c Convention) NeedsSavedGDT() bool { return c == ConventionClassic }

func (c Convention) String() string {
	if c == ConventionReworked {
		return "reworked (6.14+: GDT restored by the kernel)"
	}
	return "classic (up to 6.13: GDT restored by kjump's jump-back stub)"
}

// MarshalText writes the convention's stable token.
func (c Convention) MarshalText() ([]byte, error) {
	t, ok := conventionTokens[c]
	if !ok {
		return nil, fmt.Errorf("unknown kexec-jump convention %d", int(c))
	}
	return []byte(t), nil
}

// UnmarshalText reads a token written by MarshalText; anything else is an
// error (a helper must not guess how to return).
func (c *Convention) UnmarshalText(b []byte) error {
	for k, t := range conventionTokens {
		if string(b) == t {
			*c = k
			return nil
		}
	}
	return fmt.Errorf("unknown kexec-jump convention %q (want classic or reworked): the helper and the original run different kjump builds", b)
}
