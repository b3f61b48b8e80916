// Command hibernate saves the running machine through a kexec jump into a
// helper kernel. Subcommands live in their own files and register in init.
// The same static binary is PID 1 of the helper kernel.
package main

import (
	"os"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/helper"
)

// version is set at build time (-ldflags "-X main.version=...").
var version string

var commands = &cli.Set{Prog: "hibernate", Version: cli.BuildVersion(version)}

func init() { commands.Register(commands.CompletionCommand()) }

func main() {
	if helper.IsWorker() {
		os.Exit(helper.WorkerMain())
	}
	if helper.IsHelper() {
		helper.Main()
		os.Exit(1)
	}
	os.Exit(commands.Main(os.Args[1:]))
}
