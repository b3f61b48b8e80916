package main

import (
	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/handoff"
)

func init() {
	commands.Register(cli.Command{Name: "now", Summary: "hibernate: save the machine to the target and power off",
		Run: func(args []string) error { return runJump(handoff.Now, args) }})
}
