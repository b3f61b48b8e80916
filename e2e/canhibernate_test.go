//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "canhibernate-follows-check", CPUs: 2, Exclusive: makeDeb, Timeout: 40 * time.Minute, Run: canHibernateFollowsCheck})
	extraDrivers["canhibernate"] = canHibernateDriver
}

// canHibernateDriver unplugs the image disk (the guest removes its PCI
// function, as a hot unplug does), watches logind's CanHibernate, plugs it
// back (PCI rescan) and watches again. Nothing but kjump's udev rule,
// service and sleep.conf drop-in connects the disk to logind's answer.
const canHibernateDriver = `#!/bin/sh
exec 2>&1
say() { echo "SYSD $*"; }
can() { busctl call org.freedesktop.login1 /org/freedesktop/login1 org.freedesktop.login1.Manager CanHibernate | sed 's/^s //'; }
# wait_can WANT|!WANT: poll for up to 3 minutes
wait_can() {
	i=0
	while [ $i -lt 180 ]; do
		c=$(can)
		case $1 in
		!*) [ "$c" != "\"${1#!}\"" ] && break ;;
		*) [ "$c" = "\"$1\"" ] && break ;;
		esac
		sleep 1; i=$((i+1))
	done
	echo "$c after ${i}s"
}
systemctl is-system-running --wait >/dev/null
say "up: $(systemd-analyze | head -1)"
# What resume did in the initramfs (no image on this cold boot): in the
# journal through the kernel log, and in the record /run carried over.
say "resume in the journal: $(journalctl -b -t kjump-resume -o cat | tail -1)"
say "status: $(hibernate status | grep -e 'resume this boot' -e logind | tr -s ' ' | tr '\n' '|')"
# hibernate by hand (stderr not the journal): its refusal is in the
# journal, and in the record hibernate status reads.
hibernate now /dev/vdz 2>/tmp/now.err
say "by hand: rc=$? journal: $(journalctl -b -t hibernate -o cat | grep -c 'refused: .*target') record: $(sed -n 's/.*"result": "\(.*\)".*/\1/p' /var/lib/kjump/hibernate.json)"
say "boot: CanHibernate=$(wait_can yes) service=$(systemctl show -p Result --value kjump-canhibernate.service) timer=$(systemctl is-active kjump-canhibernate.timer)"
pci=$(readlink -f /sys/block/vdb/device/..)
say "unplugging /dev/vdb (${pci##*/})"
echo 1 > $pci/remove
say "target gone: exists=$([ -e /dev/vdb ] && echo yes || echo no) CanHibernate=$(wait_can '!yes')"
say "drop-in: $(grep -e '^#   ' -e '^Allow' /run/systemd/sleep.conf.d/kjump.conf | tr '\n' '|')"
systemctl hibernate
say "systemctl hibernate rc=$? (refused by logind)"
echo 1 > /sys/bus/pci/rescan
udevadm settle
say "target back: exists=$([ -e /dev/vdb ] && echo yes || echo no) CanHibernate=$(wait_can yes)"
say "drop-in: $(grep -e '^Allow' /run/systemd/sleep.conf.d/kjump.conf | tr '\n' '|')"
# An edited configuration: kjump-canhibernate.path re-runs the check (the
# timer's next run is minutes away: the check just ran for the disk).
say "path unit: $(systemctl is-enabled kjump-canhibernate.path) $(systemctl is-active kjump-canhibernate.path) timer next: $(systemctl show -p NextElapseUSecMonotonic --value kjump-canhibernate.timer)"
cp /etc/kjump.conf /etc/kjump.conf.good
sed -i 's|/dev/vdb|/dev/vdz|' /etc/kjump.conf
say "config names /dev/vdz: CanHibernate=$(wait_can '!yes')"
# Put back right away: a change while the check runs is checked again.
mv /etc/kjump.conf.good /etc/kjump.conf
say "config back: CanHibernate=$(wait_can yes)"
# An edit while the check runs: the path unit starts the check for the
# first edit; the second, a second later, starts nothing (the start merges
# into the running one), so the check itself must notice the file changed
# under it and check again. Once every run has ended, logind's answer must
# be the one for the file as it is now.
inv=$(systemctl show -p InvocationID --value kjump-canhibernate.service)
cp /etc/kjump.conf /etc/kjump.conf.good
sed -i 's|/dev/vdb|/dev/vdz|' /etc/kjump.conf
sleep 1
mv /etc/kjump.conf.good /etc/kjump.conf
i=0
while [ $i -lt 240 ]; do
	if [ "$(systemctl show -p InvocationID --value kjump-canhibernate.service)" != "$inv" ] &&
		[ "$(systemctl show -p ActiveState --value kjump-canhibernate.service)" = inactive ]; then
		sleep 2
		[ "$(systemctl show -p ActiveState --value kjump-canhibernate.service)" = inactive ] && break
	fi
	sleep 0.5; i=$((i+1))
done
say "edit during the check: CanHibernate=$(can) re-checks: $(journalctl -b -u kjump-canhibernate.service -o cat | grep -c 'changed during the check')"
say "done"
systemctl poweroff
`

// canHibernateFollowsCheck: a Debian with systemd and kjump from its .deb
// (the systemd scenarios' system). logind's CanHibernate is "yes" at boot
// (the check passes), not "yes" once the image target is unplugged, and
// "yes" again when it is back; `systemctl hibernate` meanwhile is refused
// by logind, before kjump. Then the configuration's target is renamed to
// a missing disk and back: CanHibernate follows each edit within a minute
// through kjump-canhibernate.path, nothing run by hand (the timer's next
// run is 5 minutes after the last check); an edit while the check runs is
// not lost.
func canHibernateFollowsCheck(s *S) error {
	kernel, err := testKernel("")
	if err != nil {
		return err
	}
	tarball, err := vm.DebianRootfs("initramfs-tools")
	if err != nil {
		return err
	}
	rootDisk, initrd, err := s.debianSystem(tarball, kernel, "initramfs-tools", "canhibernate")
	if err != nil {
		return err
	}
	imageDisk := filepath.Join(s.Dir, "image.raw")
	if err := vm.CreateDisk(imageDisk, 1024); err != nil {
		return err
	}
	m, err := s.Start(vm.Config{Name: "canhibernate", Kernel: kernel, Initrd: initrd, SMP: 2,
		Append: region + " root=/dev/vda ro no_timer_check", Disks: []string{rootDisk, imageDisk}})
	if err != nil {
		return err
	}
	boot := time.Now()
	if _, err := m.Expect(`SYSD up: `, 15*time.Minute); err != nil {
		return err
	}
	s.T.Logf("systemd boot: %s", time.Since(boot).Round(time.Second))
	steps := []struct{ pattern, what string }{
		{`SYSD resume in the journal: nothing to resume \(no image to resume on /dev/vdb.*\); booting normally`, "resume's outcome in the journal"},
		{`SYSD status: .*resume this boot: resume: none at `, "resume's outcome in hibernate status"},
		{`SYSD by hand: rc=1 journal: [1-9]\d* record: refused`, "hibernate now by hand, refused: journal and record"},
		{`SYSD boot: CanHibernate="yes" after \d+s service=success timer=active`, "CanHibernate at boot, the check passing"},
		{`SYSD target gone: exists=no CanHibernate="(no|na)" after (\d+)s`, "CanHibernate with the target unplugged"},
		{`SYSD drop-in: .*target: .*/dev/vdb.*AllowHibernation=no`, "the drop-in naming the failed check"},
		{`SYSD systemctl hibernate rc=[1-9]`, "systemctl hibernate refused"},
		{`SYSD target back: exists=yes CanHibernate="yes" after (\d+)s`, "CanHibernate with the target back"},
		{`SYSD path unit: enabled active `, "kjump-canhibernate.path enabled by the package"},
		{`SYSD config names /dev/vdz: CanHibernate="(no|na)" after ([0-9]|[1-5][0-9])s`, "CanHibernate after the configuration names a missing disk (the path unit, within a minute)"},
		{`SYSD config back: CanHibernate="yes" after ([0-9]|[1-5][0-9])s`, "CanHibernate after the configuration is put back (the path unit, within a minute)"},
		{`SYSD edit during the check: CanHibernate="yes" re-checks: \d+`, "CanHibernate after an edit while the check ran"},
	}
	for _, st := range steps {
		t0 := time.Now()
		mm, err := m.Expect(st.pattern, 5*time.Minute)
		if err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
		s.T.Logf("%s: %s (%s)", st.what, strings.TrimSpace(mm[0]), time.Since(t0).Round(time.Second))
	}
	if _, err := m.ExpectString("SYSD done", 2*time.Minute); err != nil {
		return err
	}
	return m.Wait(3 * time.Minute)
}
