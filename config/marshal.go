package config

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// Marshal writes c as a TOML file that Parse reads back to an equal Config
// (`ulvsadm --write-config`). Every key is written, defaults included, so
// that the file documents the running state completely.
func Marshal(c *Config) []byte {
	var b bytes.Buffer
	b.WriteString("# ulvs configuration (see the README's \"Configuration file\" section)\n\n")
	d := &c.Director
	b.WriteString("[director]\n")
	kv(&b, "", "public_interface", quote(d.PublicInterface))
	kv(&b, "", "private_interface", quote(d.PrivateInterface))
	kv(&b, "", "engine", quote(string(d.Engine)))
	kv(&b, "", "workers", fmt.Sprint(d.Workers))
	kv(&b, "", "control_socket", quote(d.ControlSocket))
	kv(&b, "", "max_connections", fmt.Sprint(d.MaxConnections))
	kv(&b, "", "log_level", quote(d.LogLevel))
	kv(&b, "", "conn_table_bits", fmt.Sprint(d.ConnTableBits))
	kv(&b, "", "health_max_in_flight", fmt.Sprint(d.HealthMaxInFlight))
	kv(&b, "", "rx_ring", quote(string(d.RxRing)))
	kv(&b, "", "xdp", quote(string(d.XDP)))
	b.WriteString("\n[timeouts]\n")
	kv(&b, "", "tcp", durString(c.Timeouts.TCP))
	kv(&b, "", "tcpfin", durString(c.Timeouts.TCPFin))
	kv(&b, "", "udp", durString(c.Timeouts.UDP))
	b.WriteString("\n[conntrack]\n")
	kv(&b, "", "expire_nodest_conn", fmt.Sprint(c.Conntrack.ExpireNodestConn))
	kv(&b, "", "expire_quiescent_template", fmt.Sprint(c.Conntrack.ExpireQuiescentTemplate))
	kv(&b, "", "conn_reuse_mode", fmt.Sprint(c.Conntrack.ConnReuseMode))
	kv(&b, "", "sloppy_tcp", fmt.Sprint(c.Conntrack.SloppyTCP))
	for i := range c.VirtualServers {
		vs := &c.VirtualServers[i]
		b.WriteString("\n[[virtual_server]]\n")
		kv(&b, "", "protocol", quote(vs.Protocol.String()))
		kv(&b, "", "address", quote(vs.Address.String()))
		kv(&b, "", "scheduler", quote(vs.Scheduler))
		kv(&b, "", "persistence", durString(vs.Persistence))
		kv(&b, "", "netmask", quote(vs.NetmaskString()))
		flags := make([]string, len(vs.SchedFlags))
		for j, f := range vs.SchedFlags {
			flags[j] = quote(f)
		}
		kv(&b, "", "sched_flags", "["+strings.Join(flags, ", ")+"]")
		kv(&b, "", "one_packet", fmt.Sprint(vs.OnePacket))
		if vs.SorryServer.IsValid() {
			kv(&b, "", "sorry_server", quote(vs.SorryServer.String()))
			kv(&b, "", "sorry_method", quote(vs.SorryMethod.String()))
		}
		if vs.HealthCheck != nil {
			marshalHealth(&b, "", "virtual_server.health_check", vs.HealthCheck)
		}
		for _, rs := range vs.RealServers {
			b.WriteString("\n  [[virtual_server.real_server]]\n")
			kv(&b, "  ", "address", quote(rs.Address.String()))
			kv(&b, "  ", "method", quote(rs.Method.String()))
			kv(&b, "  ", "weight", fmt.Sprint(rs.Weight))
			kv(&b, "  ", "upper_threshold", fmt.Sprint(rs.UpperThreshold))
			kv(&b, "  ", "lower_threshold", fmt.Sprint(rs.LowerThreshold))
			if rs.HealthCheck != nil {
				marshalHealth(&b, "  ", "virtual_server.real_server.health_check", rs.HealthCheck)
			}
		}
	}
	marshalWeb(&b, &c.Web) // config/web.go
	marshalFailover(&b, c) // config/failover.go
	return b.Bytes()
}

func kv(b *bytes.Buffer, indent, k, v string) {
	fmt.Fprintf(b, "%s%s = %s\n", indent, k, v)
}

func durString(d time.Duration) string {
	if d%time.Second == 0 {
		return quote(fmt.Sprintf("%ds", int64(d/time.Second)))
	}
	return quote(d.String())
}

// quote writes a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
