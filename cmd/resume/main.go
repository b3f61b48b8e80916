// Command resume restores a machine from a kjump image (early boot or by
// hand) and inspects images offline. Subcommands register in init.
package main

import (
	"os"

	"github.com/kjump/kjump/internal/cli"
)

var commands = &cli.Set{Prog: "resume"}

func main() { os.Exit(commands.Main(os.Args[1:])) }
