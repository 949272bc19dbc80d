package config

// The [failover] table (issue 7): failover.Settings decoded as it is, and
// validated by its Resolve, with errors reported as file:line: key.

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/ulvs/ulvs/failover"
)

func init() {
	for _, k := range []string{"virtual_router_id", "priority", "interval", "interfaces", "peers",
		"preempt", "preempt_delay", "secret", "nat_router", "sync", "sync_interface", "sync_id",
		"local_addresses", "unicast", "control_port", "sync_port", "sync_group", "sync_unicast",
		"sync_maxlen", "garp_count", "garp_duration"} {
		schema["failover."+k] = true
	}
	schema["failover"] = true
}

// VIPs returns the distinct virtual service addresses, in file order: the
// addresses a failover pair announces and lists in its adverts.
func (c *Config) VIPs() []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, vs := range c.VirtualServers {
		a := vs.Address.Addr().Unmap()
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// ResolveFailover validates the [failover] table against the virtual
// services; nil, nil when there is none.
func (c *Config) ResolveFailover() (*failover.Resolved, error) {
	if c.Failover == nil {
		return nil, nil
	}
	return c.Failover.Resolve(c.VIPs())
}

// validateFailover adds Resolve's error, under its key, to l.
func (c *Config) validateFailover(l *errList) {
	if _, err := c.ResolveFailover(); err != nil {
		key, msg := "failover", err.Error()
		msg = strings.TrimPrefix(msg, failover.ErrSettings.Error()+": ")
		if strings.HasPrefix(msg, "failover.") {
			if i := strings.Index(msg, ": "); i > 0 {
				key, msg = msg[:i], msg[i+2:]
			}
		}
		if !errors.Is(err, failover.ErrSettings) {
			msg = err.Error()
		}
		l.add(key, ErrInvalid, "%s", msg)
	}
}

// failoverChanged reports a change of the [failover] table, which needs a
// restart of ulvsd (a reload reports it in Changes.Restart).
func failoverChanged(a, b *failover.Settings) bool { return !reflect.DeepEqual(a, b) }

// marshalFailover appends the [failover] table, if any, to a Marshal output.
func marshalFailover(b *bytes.Buffer, c *Config) {
	if c.Failover == nil {
		return
	}
	b.WriteString("\n")
	_ = toml.NewEncoder(b).Encode(struct {
		Failover *failover.Settings `toml:"failover"`
	}{c.Failover})
}
