// Command ulvsbench runs the ulvs benchmarks. Subcommands:
//
//	ulvsbench sched replay --sched NAME [--flags f1,f2] --trace FILE
//
// Later subcommands (sched sim, dataplane) join here; the logic lives in
// package bench/....
package main

import (
	"fmt"
	"os"

	"github.com/ulvs/ulvs/bench/dataplane"
	"github.com/ulvs/ulvs/bench/sched"
)

const usage = `usage: ulvsbench COMMAND [ARGS]

commands:
  sched replay   replay a trace of pool and connection events through one scheduler
  dataplane      packet and connection rates of ulvsd against the kernel on a lab (root)
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	switch args[0] {
	case "sched":
		return sched.Main(args[1:], os.Stdin, os.Stdout, os.Stderr)
	case "dataplane":
		return dataplane.Main(args[1:], os.Stdout, os.Stderr)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "ulvsbench: unknown command %q\n%s", args[0], usage)
		return 2
	}
}
