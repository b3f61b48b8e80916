// Command hibernate saves the running machine through a kexec jump into a
// helper kernel. Subcommands live in their own files and register in init.
package main

import (
	"os"

	"github.com/kjump/kjump/internal/cli"
)

var commands = &cli.Set{Prog: "hibernate"}

func main() { os.Exit(commands.Main(os.Args[1:])) }
