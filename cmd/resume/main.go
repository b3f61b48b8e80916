// Command resume restores a machine from a kjump image (early boot or by
// hand) and inspects images offline. Subcommands register in init.
package main

import (
	"os"

	"github.com/kjump/kjump/internal/cli"
)

// version is set at build time (-ldflags "-X main.version=...").
var version string

var commands = &cli.Set{Prog: "resume", Version: cli.BuildVersion(version)}

func init() { commands.Register(commands.CompletionCommand()) }

func main() { os.Exit(commands.Main(os.Args[1:])) }
