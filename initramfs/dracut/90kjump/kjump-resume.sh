#!/bin/sh
# dracut pre-mount hook (sourced by dracut, so no exit): resume from a
# kjump image before the root file system is mounted. kjump-resume does
# not return when it resumes; otherwise the boot goes on.
type getarg >/dev/null 2>&1 || . /lib/dracut-lib.sh

if [ -x /usr/bin/kjump-resume ] && ! getarg noresume >/dev/null; then
	info "kjump: resuming from a hibernation image, if there is one"
	/usr/bin/kjump-resume || warn "kjump: resume failed (exit status $?); booting normally"
fi
