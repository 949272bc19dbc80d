package control

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/conntrack"
	"github.com/ulvs/ulvs/forwarder"
)

// DirectorPlane adapts the forwarder's Director to the Dataplane interface.
type DirectorPlane struct {
	D *forwarder.Director
	// Rates estimates the --rate columns; nil leaves them at zero.
	Rates *Estimator
}

var _ Dataplane = (*DirectorPlane)(nil)

func serviceKey(k config.Key) forwarder.ServiceKey {
	return forwarder.ServiceKey{Proto: uint8(k.Protocol), Addr: k.Address.Addr(), Port: k.Address.Port()}
}

func methodOf(m config.Method) conntrack.Method {
	switch m {
	case config.NAT:
		return conntrack.MethodMasq
	case config.TUN:
		return conntrack.MethodTunnel
	}
	return conntrack.MethodRoute
}

func serviceSpec(k config.Key, vs *config.VirtualServer) forwarder.ServiceSpec {
	return forwarder.ServiceSpec{
		ServiceKey:  serviceKey(k),
		Scheduler:   vs.Scheduler,
		Flags:       vs.SchedFlags,
		Persistence: vs.Persistence,
		Netmask:     vs.Netmask,
		OnePacket:   vs.OnePacket,
	}
}

func destSpec(rs *config.RealServer) forwarder.DestSpec {
	return forwarder.DestSpec{
		Addr:   rs.Address,
		Method: methodOf(rs.Method),
		Weight: int32(rs.Weight),
		Upper:  rs.UpperThreshold,
		Lower:  rs.LowerThreshold,
	}
}

// Apply carries out one operation on the director.
func (p *DirectorPlane) Apply(op config.Op) error {
	d := p.D
	switch op.Kind {
	case config.OpSetTimeouts:
		return d.SetTimeouts(int(op.Timeouts.TCP/time.Second), int(op.Timeouts.TCPFin/time.Second), int(op.Timeouts.UDP/time.Second))
	case config.OpSetConntrack:
		return d.Conntrack().SetSettings(conntrack.Settings{
			ConnReuseMode:           op.Conntrack.ConnReuseMode,
			ExpireNodestConn:        op.Conntrack.ExpireNodestConn,
			ExpireQuiescentTemplate: op.Conntrack.ExpireQuiescentTemplate,
			SloppyTCP:               op.Conntrack.SloppyTCP,
		})
	case config.OpAddService:
		return d.AddService(serviceSpec(op.Key, &op.Service))
	case config.OpEditService:
		return d.EditService(serviceSpec(op.Key, &op.Service))
	case config.OpDeleteService:
		return d.DeleteService(serviceKey(op.Key))
	case config.OpAddServer:
		return d.AddDest(serviceKey(op.Key), destSpec(&op.Server))
	case config.OpEditServer:
		return d.EditDest(serviceKey(op.Key), destSpec(&op.Server))
	case config.OpDeleteServer:
		return d.DeleteDest(serviceKey(op.Key), op.Server.Address)
	}
	return fmt.Errorf("unknown operation %s", op.Kind)
}

// Zero resets counters (ipvsadm -Z).
func (p *DirectorPlane) Zero(k *config.Key) error {
	if k == nil {
		p.D.Zero()
		return nil
	}
	return p.D.ZeroService(serviceKey(*k))
}

// Snapshot fills in the live counters and, with conns, the connections.
func (p *DirectorPlane) Snapshot(s *ipvsadm.Snapshot, conns bool) {
	tcp, tcpfin, udp := p.D.Conntrack().Timeouts()
	s.Timeouts = ipvsadm.TimeoutsSeconds{TCP: tcp, TCPFin: tcpfin, UDP: udp}
	live := map[forwarder.ServiceKey]*forwarder.ServiceInfo{}
	infos := p.D.Services()
	for i := range infos {
		live[infos[i].Spec.ServiceKey] = &infos[i]
	}
	for i := range s.Services {
		svc := &s.Services[i]
		si := live[serviceKey(config.Key{Protocol: svc.Protocol, Address: svc.Address})]
		if si == nil {
			continue
		}
		svc.Stats = stats(si.Stats)
		if p.Rates != nil {
			svc.Rate = p.Rates.Rate(rateKey{svc: si.Spec.ServiceKey})
		}
		byAddr := map[netip.AddrPort]*forwarder.DestInfo{}
		for j := range si.Dests {
			byAddr[si.Dests[j].Spec.Addr] = &si.Dests[j]
		}
		for j := range svc.Servers {
			rs := &svc.Servers[j]
			di := byAddr[rs.Address]
			if di == nil {
				continue
			}
			rs.ActiveConns = uint32(max(di.ActiveConns, 0))
			rs.InactConns = uint32(max(di.InactiveConns, 0))
			rs.PersistConns = uint32(max(di.PersistentConns, 0))
			rs.Stats = stats(di.Stats)
			if p.Rates != nil {
				rs.Rate = p.Rates.Rate(rateKey{svc: si.Spec.ServiceKey, dest: rs.Address})
			}
		}
	}
	if conns {
		now := p.D.Now()
		p.D.Conntrack().Range(now, func(ci *conntrack.ConnInfo) bool {
			s.Conns = append(s.Conns, connOf(ci))
			return true
		})
	}
}

func stats(c forwarder.Counters) ipvsadm.Stats {
	return ipvsadm.Stats{Conns: c.Conns, InPkts: c.InPkts, OutPkts: c.OutPkts, InBytes: c.InBytes, OutBytes: c.OutBytes}
}

func addrPort(a [16]byte, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(a).Unmap(), port)
}

func connOf(ci *conntrack.ConnInfo) ipvsadm.Conn {
	proto := config.TCP
	if ci.Proto == 17 {
		proto = config.UDP
	}
	return ipvsadm.Conn{
		Protocol: proto,
		Client:   addrPort(ci.CAddr, ci.CPort),
		Virtual:  addrPort(ci.VAddr, ci.VPort),
		Dest:     addrPort(ci.DAddr, ci.DPort),
		State:    ci.State.Name(ci.Proto),
		Expires:  uint32(ci.Expires / int64(time.Second)),
	}
}
