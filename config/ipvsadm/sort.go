package ipvsadm

import (
	"net/netip"
	"slices"
)

// words returns an address as libipvs's union nf_inet_addr seen as four
// host-order 32-bit words: an IPv4 address in the first, zeros after.
func words(a netip.Addr) [4]uint32 {
	var w [4]uint32
	if a.Is4() {
		b := a.As4()
		w[0] = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		return w
	}
	b := a.As16()
	for i := range w {
		w[i] = uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
	}
	return w
}

// cmpAddr is the address part of libipvs's ipvs_cmp_services and
// ipvs_cmp_dests: C subtractions of unsigned words stored in an int, so
// differences of 2^31 or more wrap (10.0.0.1 sorts after 200.0.0.1).
func cmpAddr(first6 bool, a, b netip.Addr) int32 {
	wa, wb := words(a), words(b)
	if !first6 {
		return int32(wa[0] - wb[0])
	}
	var r int32
	for i := 0; r == 0 && i < 4; i++ {
		r = int32(wa[i] - wb[i])
	}
	return r
}

func af(a netip.Addr) int {
	if a.Is4() {
		return 2 // AF_INET
	}
	return 10 // AF_INET6
}

// cmpServices is ipvs_cmp_services (fwmark is always 0 in ulvs).
func cmpServices(s1, s2 *Service) int {
	a1, a2 := s1.Address.Addr(), s2.Address.Addr()
	if r := af(a1) - af(a2); r != 0 {
		return r
	}
	if r := int(s1.Protocol) - int(s2.Protocol); r != 0 {
		return r
	}
	if r := cmpAddr(a1.Is6(), a1, a2); r != 0 {
		return int(r)
	}
	return int(s1.Address.Port()) - int(s2.Address.Port())
}

// cmpServers is ipvs_cmp_dests; the first server's family decides how many
// words are compared.
func cmpServers(d1, d2 *Server) int {
	if r := cmpAddr(d1.Address.Addr().Is6(), d1.Address.Addr(), d2.Address.Addr()); r != 0 {
		return int(r)
	}
	return int(d1.Address.Port()) - int(d2.Address.Port())
}

// SortedServices returns a copy of svcs in ipvsadm's listing order:
// address family, protocol (TCP before UDP), address as wrapped signed
// 32-bit differences, port. It sorts with glibc's qsort algorithm (a
// top-down merge sort), so that the non-transitive wrapped comparison gives
// the same order as ipvsadm on glibc.
func SortedServices(svcs []Service) []Service {
	out := slices.Clone(svcs)
	msort(out, func(a, b *Service) int { return cmpServices(a, b) })
	return out
}

// SortedServers returns a copy of dests in ipvsadm's order (address as
// wrapped signed 32-bit differences, then port).
func SortedServers(dests []Server) []Server {
	out := slices.Clone(dests)
	msort(out, func(a, b *Server) int { return cmpServers(a, b) })
	return out
}

// msort is glibc's msort_with_tmp: split n into n/2 and the rest, sort
// each half, merge taking from the left half while cmp <= 0.
func msort[T any](b []T, cmp func(a, b *T) int) {
	if len(b) <= 1 {
		return
	}
	tmp := make([]T, len(b))
	msortRec(b, tmp, cmp)
}

func msortRec[T any](b, tmp []T, cmp func(a, b *T) int) {
	n := len(b)
	if n <= 1 {
		return
	}
	n1 := n / 2
	b1, b2 := b[:n1], b[n1:]
	msortRec(b1, tmp, cmp)
	msortRec(b2, tmp, cmp)
	i, j, k := 0, 0, 0
	for i < len(b1) && j < len(b2) {
		if cmp(&b1[i], &b2[j]) <= 0 {
			tmp[k] = b1[i]
			i++
		} else {
			tmp[k] = b2[j]
			j++
		}
		k++
	}
	k += copy(tmp[k:], b1[i:])
	// The rest of b2 is already in place.
	copy(b, tmp[:k])
}
