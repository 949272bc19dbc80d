// Package sched drives the schedulers of package scheduler from traces:
// `ulvsbench sched replay` replays a JSON-lines trace of pool and connection
// events through one scheduler and prints its decisions.
package sched

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strings"

	"github.com/ulvs/ulvs/scheduler"
)

// ErrTrace is wrapped by every error about the trace's content; the message
// names the line.
var ErrTrace = errors.New("bad trace")

// Config selects the scheduler of a replay.
type Config struct {
	Sched   string   // rr wrr lc wlc sed nq lblc lblcr dh sh mh fo ovf twos
	Flags   []string // ipvsadm -b names: sh-port, sh-fallback, mh-port, mh-fallback, flag-1..3
	Options scheduler.Options
}

// event is one trace line. Pointers tell absent fields from zero ones.
type event struct {
	Op     string   `json:"op"`
	Server string   `json:"server"`
	Weight *int32   `json:"weight"`
	Upper  *uint32  `json:"upper"`
	Lower  *uint32  `json:"lower"`
	ID     string   `json:"id"`
	Src    string   `json:"src"`
	Dst    string   `json:"dst"`
	Proto  string   `json:"proto"`
	T      *float64 `json:"t"`
}

type conn struct {
	d      *scheduler.Dest
	active bool
}

type replayer struct {
	pool    *scheduler.Pool
	servers map[netip.AddrPort]*scheduler.Dest // current and deleted (the kernel's trash)
	conns   map[string]*conn
	now     int64
	out     *bufio.Writer
}

// Replay reads the trace from r, applies each event in order and writes one
// line per conn event to w: "ID SERVER", or "ID -" when no server is
// available. It stops at the first bad line with an error naming it.
//
// Events (JSON objects, one per line; blank lines are skipped):
//
//	{"op":"add","server":"10.0.0.1:80","weight":4}    optional "upper","lower"; weight defaults to 1
//	{"op":"edit","server":"10.0.0.1:80","weight":0}   absent fields keep their value
//	{"op":"del","server":"10.0.0.1:80"}
//	{"op":"conn","id":"c17","src":"192.168.1.100:40000","dst":"10.99.0.100:80","t":12.5}
//	{"op":"inactive","id":"c17"}  {"op":"active","id":"c17"}  {"op":"close","id":"c17"}
//	{"op":"tick","t":130.0}
//
// A scheduled connection is bound to its server as active until an
// inactive or close event. "t" (seconds, never decreasing, allowed on any
// event) is the clock of lblc/lblcr; their 60-s collection runs as it
// passes. conn's optional "proto" is tcp (default), udp, sctp or icmp; sh-port
// and mh-port use the source port of tcp, udp and sctp only.
func Replay(r io.Reader, w io.Writer, cfg Config) error {
	flags, err := scheduler.ParseFlags(cfg.Flags)
	if err != nil {
		return err
	}
	pool, err := scheduler.New(cfg.Sched, flags, cfg.Options)
	if err != nil {
		return err
	}
	rp := &replayer{
		pool:    pool,
		servers: map[netip.AddrPort]*scheduler.Dest{},
		conns:   map[string]*conn{},
		now:     cfg.Options.Now,
		out:     bufio.NewWriter(w),
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		if err := rp.apply(b); err != nil {
			rp.out.Flush()
			return fmt.Errorf("%w: line %d: %w", ErrTrace, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		rp.out.Flush()
		return fmt.Errorf("%w: line %d: %w", ErrTrace, line+1, err)
	}
	return rp.out.Flush()
}

func (rp *replayer) apply(b []byte) error {
	var ev event
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return fmt.Errorf("not a trace event: %v", err)
	}
	if dec.More() {
		return errors.New("more than one JSON value on the line")
	}
	if ev.T != nil {
		t := *ev.T
		if math.IsNaN(t) || math.IsInf(t, 0) || t < 0 || t > 9e9 {
			return fmt.Errorf("t %v out of range", t)
		}
		ns := int64(math.Round(t * 1e9))
		if ns < rp.now {
			return fmt.Errorf("t %v goes back in time (last %v)", t, float64(rp.now)/1e9)
		}
		rp.now = ns
		rp.pool.Tick(ns)
	}
	switch ev.Op {
	case "add":
		ap, err := parseServer(ev.Server)
		if err != nil {
			return err
		}
		w := int32(1)
		if ev.Weight != nil {
			w = *ev.Weight
		}
		var u, l uint32
		if ev.Upper != nil {
			u = *ev.Upper
		}
		if ev.Lower != nil {
			l = *ev.Lower
		}
		d, ok := rp.servers[ap]
		if ok && d.Available() {
			return fmt.Errorf("add: server %v already added", ap)
		}
		if !ok {
			d = scheduler.NewDest(ap, w, u, l)
		}
		if err := rp.pool.AddWith(d, w, u, l); err != nil {
			return fmt.Errorf("add: %w", err)
		}
		rp.servers[ap] = d
	case "edit":
		d, err := rp.current(ev.Server, "edit")
		if err != nil {
			return err
		}
		w := d.Weight()
		u, l := d.Thresholds()
		if ev.Weight != nil {
			w = *ev.Weight
		}
		if ev.Upper != nil {
			u = *ev.Upper
		}
		if ev.Lower != nil {
			l = *ev.Lower
		}
		if err := rp.pool.Edit(d, w, u, l); err != nil {
			return fmt.Errorf("edit: %w", err)
		}
	case "del":
		d, err := rp.current(ev.Server, "del")
		if err != nil {
			return err
		}
		if err := rp.pool.Delete(d); err != nil {
			return fmt.Errorf("del: %w", err)
		}
	case "conn":
		if ev.ID == "" {
			return errors.New(`conn: missing "id"`)
		}
		if _, dup := rp.conns[ev.ID]; dup {
			return fmt.Errorf("conn: id %q is already open", ev.ID)
		}
		if strings.ContainsAny(ev.ID, " \t\n") {
			return fmt.Errorf("conn: id %q contains white space", ev.ID)
		}
		src, err := netip.ParseAddrPort(ev.Src)
		if err != nil {
			return fmt.Errorf(`conn: "src" %q: want address:port`, ev.Src)
		}
		dst, err := netip.ParseAddrPort(ev.Dst)
		if err != nil {
			return fmt.Errorf(`conn: "dst" %q: want address:port`, ev.Dst)
		}
		if src.Addr().Unmap().Is4() != dst.Addr().Unmap().Is4() {
			return errors.New("conn: src and dst are of different address families")
		}
		proto, err := parseProto(ev.Proto)
		if err != nil {
			return err
		}
		f := scheduler.Flow{
			Src: src.Addr().As16(), Dst: dst.Addr().As16(),
			SrcPort: src.Port(), DstPort: dst.Port(),
			Proto: proto, IPv6: !src.Addr().Unmap().Is4(),
		}
		d := rp.pool.Schedule(&f, rp.now)
		c := &conn{d: d, active: true}
		rp.conns[ev.ID] = c
		if d == nil {
			fmt.Fprintf(rp.out, "%s -\n", ev.ID)
			return nil
		}
		d.Bind(false, true)
		fmt.Fprintf(rp.out, "%s %s\n", ev.ID, d.AddrPort())
	case "active", "inactive":
		c, err := rp.conn(ev)
		if err != nil {
			return err
		}
		want := ev.Op == "active"
		if c.d != nil && c.active != want {
			c.d.SetActive(want)
		}
		c.active = want
	case "close":
		c, err := rp.conn(ev)
		if err != nil {
			return err
		}
		if c.d != nil {
			c.d.Unbind(false, c.active)
		}
		delete(rp.conns, ev.ID)
	case "tick":
		if ev.T == nil {
			return errors.New(`tick: missing "t"`)
		}
	case "":
		return errors.New(`missing "op"`)
	default:
		return fmt.Errorf("unknown op %q (want add, edit, del, conn, active, inactive, close or tick)", ev.Op)
	}
	return nil
}

func parseServer(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, errors.New(`missing "server"`)
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf(`"server" %q: want address:port`, s)
	}
	return ap, nil
}

func (rp *replayer) current(s, op string) (*scheduler.Dest, error) {
	ap, err := parseServer(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	d, ok := rp.servers[ap]
	if !ok || !d.Available() {
		return nil, fmt.Errorf("%s: no server %v", op, ap)
	}
	return d, nil
}

func (rp *replayer) conn(ev event) (*conn, error) {
	if ev.ID == "" {
		return nil, fmt.Errorf(`%s: missing "id"`, ev.Op)
	}
	c, ok := rp.conns[ev.ID]
	if !ok {
		return nil, fmt.Errorf("%s: no open connection %q", ev.Op, ev.ID)
	}
	return c, nil
}

func parseProto(s string) (uint8, error) {
	switch strings.ToLower(s) {
	case "", "tcp":
		return 6, nil
	case "udp":
		return 17, nil
	case "sctp":
		return 132, nil
	case "icmp":
		return 1, nil
	}
	return 0, fmt.Errorf(`conn: "proto" %q: want tcp, udp, sctp or icmp`, s)
}
