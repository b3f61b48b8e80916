#!/bin/bash
# dracut module: kjump's resume in the initramfs, run as a pre-mount hook
# (before the root file system is mounted; with systemd in the initramfs
# dracut-pre-mount.service runs it before sysroot.mount). Installed as
# /usr/bin/kjump-resume: dracut's own "resume" module and busybox's applet
# are swsusp's, so the name must not clash.

check() {
	require_binaries /usr/sbin/resume || return 1
	return 0 # kjump installed: always include
}

depends() {
	return 0
}

install() {
	local f files
	# The restore kernel boots the helper initramfs copied below: bring it
	# up to date first (does nothing when it is current).
	if [[ -x /usr/sbin/hibernate && -e /boot/kjump/helper.bzImage ]]; then
		/usr/sbin/hibernate prepare >/dev/null || dwarn "kjump: 'hibernate prepare' failed; the initramfs gets the helper initramfs as it is"
	fi
	inst_simple /usr/sbin/resume /usr/bin/kjump-resume
	# The configuration, restore kernel, its initramfs and the key file,
	# at the paths resume reads them from.
	if ! files=$(/usr/sbin/resume initramfs-files); then
		dwarn "kjump: the initramfs cannot resume from a kjump image until the above is fixed"
		return 0
	fi
	# Root-only inside the initramfs: the key file above all. (The mode of
	# the initramfs file itself is dracut's to set.)
	for f in $files; do
		(umask 077 && inst_simple "$f")
		chmod 0600 "${initdir}$f" || dwarn "kjump: could not make $f root-only in the initramfs"
	done
	inst_hook pre-mount 05 "$moddir/kjump-resume.sh"
}
