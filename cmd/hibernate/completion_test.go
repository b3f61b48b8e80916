package main

import (
	"bytes"
	"strings"
	"testing"
)

// Shell completion learns each command's options by running it until it
// parses them: every command must parse before it acts ('completion bash'
// as root once ran 'hibernate setup' for real), and the script offers
// every command's options.
func TestCompletionDescribesEveryCommand(t *testing.T) {
	var out bytes.Buffer
	commands.Stdout = &out
	defer func() { commands.Stdout = nil }()
	if code := commands.Main([]string{"completion", "bash"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, name := range []string{"check", "checkpoint", "now", "prepare", "preload", "setup", "status"} {
		if fl := commands.Flags(name); len(fl) < 2 {
			t.Errorf("%s: no options learned (%q): it does not parse its options before acting", name, fl)
		}
	}
	for _, opt := range []string{"--dry-run", "--undo", "--update-logind", "--lock-wait"} {
		if !strings.Contains(out.String(), opt) {
			t.Errorf("the completion script lacks %s", opt)
		}
	}
	if strings.Contains(out.String(), "kernel") && strings.Contains(out.String(), "cannot run kjump") {
		t.Errorf("setup ran while the script was generated:\n%s", out.String())
	}
}
