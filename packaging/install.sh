#!/usr/bin/env bash
# make install / make uninstall: copies the built binaries, man pages,
# example config, systemd units and initramfs hooks under $DESTDIR$PREFIX.
#
#   packaging/install.sh install|uninstall|list|units
#
# units prints the unit names the package enables (those with an [Install]
# section; 'hibernate setup' enables the same, internal/setup.Units).
#
# Layout (PREFIX defaults to /usr; initramfs-tools and systemd only look in
# /usr and /etc, so another PREFIX suits a staged or private install):
#   bin/hibernate bin/resume          -> $PREFIX/sbin/
#   out/man/*.{5,8}                   -> $PREFIX/share/man/man{5,8}/
#   systemd/kjump.conf                -> $PREFIX/share/doc/kjump/examples/kjump.conf
#   systemd/<unit files>              -> $PREFIX/lib/systemd/system/
#   systemd/<dir>/...                 -> $PREFIX/lib/systemd/<dir>/...  (system-sleep/, logind.conf.d/, system/X.d/ ...)
#   initramfs/initramfs-tools/...     -> $PREFIX/share/initramfs-tools/...  (hooks/, scripts/local-premount/)
#   initramfs/dracut/<module>/...     -> $PREFIX/lib/dracut/modules.d/<module>/...
#   initramfs/mkinitcpio/{install,hooks}/kjump -> $PREFIX/lib/initcpio/{install,hooks}/kjump
#   packaging/udev/*.rules            -> $PREFIX/lib/udev/rules.d/
#   completion (from 'hibernate completion bash|zsh', generated into out/completion/)
#                                     -> $PREFIX/share/bash-completion/completions/{hibernate,resume}
#                                        $PREFIX/share/zsh/vendor-completions/_{hibernate,resume}
# Executable bits come from the repository. Nothing in /etc is written:
# without /etc/kjump.conf every default applies, so uninstall leaves the
# system as it was.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr}
DESTDIR=${DESTDIR:-}

# manifest prints "MODE SOURCE TARGET" for every installed file.
manifest() {
	local f rel
	for f in bin/hibernate bin/resume; do echo "755 $f $PREFIX/sbin/${f#bin/}"; done
	for f in out/man/*.[58]; do [[ -e $f ]] && echo "644 $f $PREFIX/share/man/man${f##*.}/${f##*/}"; done
	echo "644 systemd/kjump.conf $PREFIX/share/doc/kjump/examples/kjump.conf"
	for f in README.md docs/setup.md docs/troubleshooting.md; do [[ -e $f ]] && echo "644 $f $PREFIX/share/doc/kjump/${f##*/}"; done
	while IFS= read -r f; do
		rel=${f#systemd/}
		[[ $rel == kjump.conf ]] && continue
		case $rel in
		*/*) echo "$(mode "$f") $f $PREFIX/lib/systemd/$rel" ;;
		*.service | *.socket | *.target | *.timer | *.path) echo "$(mode "$f") $f $PREFIX/lib/systemd/system/$rel" ;;
		esac
	done < <(find systemd -type f 2>/dev/null | sort)
	while IFS= read -r f; do echo "$(mode "$f") $f $PREFIX/share/initramfs-tools/${f#initramfs/initramfs-tools/}"; done \
		< <(find initramfs/initramfs-tools -type f 2>/dev/null | sort)
	while IFS= read -r f; do echo "$(mode "$f") $f $PREFIX/lib/dracut/modules.d/${f#initramfs/dracut/}"; done \
		< <(find initramfs/dracut -type f 2>/dev/null | sort)
	while IFS= read -r f; do echo "644 $f $PREFIX/lib/initcpio/${f#initramfs/mkinitcpio/}"; done \
		< <(find initramfs/mkinitcpio -type f 2>/dev/null | sort)
	for f in packaging/udev/*.rules; do [[ -e $f ]] && echo "644 $f $PREFIX/lib/udev/rules.d/${f##*/}"; done
	for p in hibernate resume; do
		echo "644 out/completion/$p.bash $PREFIX/share/bash-completion/completions/$p"
		echo "644 out/completion/_$p $PREFIX/share/zsh/vendor-completions/_$p"
	done
}
mode() { if [[ -x $1 ]]; then echo 755; else echo 644; fi; }

units() { { grep -l '^\[Install\]' systemd/*.service systemd/*.timer systemd/*.path 2>/dev/null || true; } | xargs -r -n1 basename; }

case ${1:-} in
list) manifest ;;
units) units ;;
install)
	for f in bin/hibernate bin/resume; do [[ -x $f ]] || { echo "install.sh: $f missing: run 'make build' first" >&2; exit 1; }; done
	# Completion scripts come from the binaries, so they match their options.
	mkdir -p out/completion
	for p in hibernate resume; do
		bin/$p completion bash >out/completion/$p.bash
		bin/$p completion zsh >out/completion/_$p
	done
	manifest | while read -r m src dst; do
		install -D -m "$m" "$src" "$DESTDIR$dst"
		echo "  $DESTDIR$dst"
	done
	;;
uninstall)
	manifest | while read -r _ _ dst; do
		if [[ -e $DESTDIR$dst || -L $DESTDIR$dst ]]; then rm -f "$DESTDIR$dst" && echo "  removed $DESTDIR$dst"; fi
		# Remove directories this install created, once empty.
		d=$(dirname "$DESTDIR$dst")
		while [[ $d == "${DESTDIR:-$PREFIX}"/* ]] && rmdir "$d" 2>/dev/null; do d=$(dirname "$d"); done
	done
	;;
*) echo "usage: $0 install|uninstall|list|units (PREFIX, DESTDIR from the environment)" >&2; exit 2 ;;
esac
