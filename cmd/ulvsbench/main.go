// Command ulvsbench runs the ulvs benchmarks. Subcommands:
//
//	ulvsbench sched replay --sched NAME [--flags f1,f2] --trace FILE
//	ulvsbench sched sim [--scheds rr,wlc,...] [--capacities 1,2,4] [--json] [--svg DIR]
//	ulvsbench dataplane [--quick] [--json]
//
// Each subcommand's logic lives in its package under bench/.
package main

import (
	"fmt"
	"os"

	"github.com/ulvs/ulvs/bench/dataplane"
	"github.com/ulvs/ulvs/bench/sched"
	"github.com/ulvs/ulvs/bench/sim"
)

const usage = `usage: ulvsbench COMMAND [ARGS]

commands:
  sched replay   replay a trace of pool and connection events through one scheduler
  sched sim      simulate a synthetic workload through a set of schedulers and compare them
  dataplane      packet and connection rates of ulvsd against the kernel on a lab (root)

'ulvsbench sched sim --help' lists the simulator's flags.
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
		if len(args) > 1 && args[1] == "sim" {
			return sim.Main(args[2:], os.Stdout, os.Stderr)
		}
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
