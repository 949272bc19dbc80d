package sched

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ulvs/ulvs/scheduler"
)

const usage = `usage: ulvsbench sched replay --sched NAME [--flags f1,f2] [--mh-table-index N] --trace FILE

Replays a JSON-lines trace of real-server and connection events through one
IPVS scheduler and prints "ID SERVER" (or "ID -") for every new connection.
FILE "-" reads standard input.

schedulers: ` + "rr wrr lc wlc sed nq lblc lblcr dh sh mh fo ovf twos" + `
flags:      sh-port sh-fallback (sh), mh-port mh-fallback (mh), flag-1 flag-2 flag-3
`

// Main runs `ulvsbench sched ARGS...` and returns the exit status: 0 on
// success, 1 when the replay fails (a bad trace line, say), 2 for bad usage.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "replay" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("ulvsbench sched replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	name := fs.String("sched", "", "scheduler name")
	flagList := fs.String("flags", "", "comma-separated scheduler flags (ipvsadm -b)")
	trace := fs.String("trace", "", "trace file (JSON lines), - for standard input")
	mhIndex := fs.Int("mh-table-index", 12, "mh table size index 8..17 (12 = 4093 slots)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "ulvsbench sched replay: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *name == "" || *trace == "" {
		fmt.Fprint(stderr, "ulvsbench sched replay: --sched and --trace are required\n"+usage)
		return 2
	}
	var flags []string
	if *flagList != "" {
		flags = strings.Split(*flagList, ",")
	}
	in := stdin
	if *trace != "-" {
		f, err := os.Open(*trace)
		if err != nil {
			fmt.Fprintf(stderr, "ulvsbench sched replay: %v\n", err)
			return 1
		}
		defer f.Close()
		in = f
	}
	cfg := Config{Sched: *name, Flags: flags, Options: scheduler.Options{MHTableIndex: *mhIndex}}
	if err := Replay(in, stdout, cfg); err != nil {
		where := ""
		if errors.Is(err, ErrTrace) {
			where = *trace + ": "
		}
		fmt.Fprintf(stderr, "ulvsbench sched replay: %s%v\n", where, err)
		if errors.Is(err, scheduler.ErrUnknownScheduler) || errors.Is(err, scheduler.ErrUnknownFlag) ||
			errors.Is(err, scheduler.ErrIncompatibleFlag) || errors.Is(err, scheduler.ErrBadOption) {
			return 2
		}
		return 1
	}
	return 0
}
