// Package jump is kexec and the x86 boot protocol, nothing above them:
// kexec_load segments and images (load, unload, the reboot(2) that jumps),
// bzImage and boot_params, e820 types, the identity page tables and ELF core
// header a kexec'd kernel boots with, the kexec-jump calling convention,
// and the image that jumps back into a stopped kernel. The purgatory
// (jump/purgatory) runs between the kernels.
//
// What the running kernel says about itself (/proc, /sys) is in
// internal/sysinfo, the helper's place in the reserved region in
// internal/layout, and what the kernels tell each other in internal/handoff.
package jump
