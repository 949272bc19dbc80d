package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ulvs/ulvs/config/ipvsadm"
)

// healthFlag is ulvs's own listing option: `ulvsadm -L --health` prints
// each real server's health as text. ipvsadm's formats (-L, -S, -c ...)
// stay byte for byte as ipvsadm prints them, with the configured weights;
// --json carries the same health fields as this listing.
const healthFlag = "--health"

// cutHealthFlag removes --health from args and reports whether it was there.
func cutHealthFlag(args []string) ([]string, bool) {
	i := slices.Index(args, healthFlag)
	if i < 0 {
		return args, false
	}
	return slices.Delete(slices.Clone(args), i, i+1), true
}

// printHealth writes the health listing:
//
//	Prot LocalAddress:Port Scheduler [sorry ADDR METHOD (active)]
//	  -> RemoteAddress:Port    Weight Effective Check  Health Since                Reason
func printHealth(w io.Writer, s *ipvsadm.Snapshot, now time.Time) {
	fmt.Fprintln(w, "Prot LocalAddress:Port Scheduler")
	fmt.Fprintf(w, "  -> %-28s %-6s %-9s %-11s %-6s %-8s %s\n", "RemoteAddress:Port", "Weight", "Effective", "Check", "Health", "For", "Reason")
	for _, svc := range s.Services {
		line := fmt.Sprintf("%s  %s %s", strings.ToUpper(svc.Protocol.String()), svc.Address, svc.Scheduler)
		if svc.SorryServer != "" {
			line += " sorry " + svc.SorryServer
			if svc.SorryActive {
				line += " (active)"
			}
		}
		fmt.Fprintln(w, line)
		for _, rs := range svc.Servers {
			eff := fmt.Sprint(rs.EffectiveWeight)
			if !rs.InPool {
				eff = "removed"
			}
			check, health, since := rs.Check, rs.Health, "-"
			if check == "" {
				check, health = "-", "-"
			}
			if !rs.Since.IsZero() {
				since = now.Sub(rs.Since).Truncate(time.Second).String()
			}
			reason := rs.Reason
			if reason == "" {
				reason = "-"
			}
			fmt.Fprintf(w, "  -> %-28s %-6d %-9s %-11s %-6s %-8s %s\n", rs.Address, rs.Weight, eff, check, health, since, reason)
		}
	}
}
