package main

import (
	"os"
	"testing"

	"github.com/kjump/kjump/internal/sleepconf"
	"github.com/kjump/kjump/internal/status"
)

// Tests never write this machine's records or logind policy.
func TestMain(m *testing.M) {
	tmp, _ := os.MkdirTemp("", "kjump-cmd-test")
	status.Dir, status.RunDir = tmp+"/var/lib/kjump", tmp+"/run/kjump"
	sleepconf.RuntimeDropIn = tmp + "/run/systemd/sleep.conf.d/kjump.conf"
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}
