package ipvsadm

import (
	"fmt"
	"strings"

	"github.com/ulvs/ulvs/config"
)

// VersionString is what -v prints. ulvsadm accepts ipvsadm 1.31's command
// line; the IPVS version it reports is the one the kernel module 1.2.1
// reports, which scripts sometimes check.
const VersionString = "ulvsadm (ipvsadm v1.31 compatible) (compiled with IPVS v1.2.1)"

// Usage returns the -h text for program prog. It follows ipvsadm's layout
// and lists what ulvs supports, its own options, and what it refuses.
func Usage(prog string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nUsage:\n", VersionString)
	for _, l := range []string{
		"-A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags] [-o]",
		"-D virtual-service",
		"-C",
		"-R",
		"-S [-n]",
		"-a|e virtual-service -r server-address [options]",
		"-d virtual-service -r server-address",
		"-L|l [virtual-service] [options]",
		"-Z [virtual-service]",
		"--set tcp tcpfin udp",
		"--reload",
		"--write-config FILE",
		"-h",
	} {
		fmt.Fprintf(&b, "  %s %s\n", prog, l)
	}
	b.WriteString(`
Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options (a full replacement)
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin (all or nothing)
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options (a full replacement)
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values (0 = unchanged)
  --reload                    make ulvsd re-read its configuration file
  --write-config FILE         write the live table as a TOML configuration file
  --help            -h        display this help message

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]

Options:
  --scheduler    -s scheduler         one of ` + strings.Join(config.Schedulers, "|") + `,
                                      the default scheduler is wlc.
  --persistent   -p [timeout]         persistent service (default 360 seconds)
  --netmask      -M netmask           persistent granularity mask
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --weight       -w weight            capacity of real server (0..65535, default 1)
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --connection   -c                   output of current connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --daemon                            output of daemon information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --tun-info                          output of tunnel information
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling (UDP)
  --numeric      -n                   numeric output of addresses and ports
  --sched-flags  -b flags             scheduler flags (comma-separated)
  --json                              listings as JSON (ulvs)
  --socket PATH                       control socket of ulvsd (ulvs)

Not supported by ulvs in userspace: -f/--fwmark-service, --sctp-service,
--pe, --tun-type gue|gre and their --tun-* options.
`)
	return b.String()
}
