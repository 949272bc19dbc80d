package pkt

import (
	"math"
	"testing"
)

func TestFlowHashStable(t *testing.T) {
	// The hash is part of the cross-director contract: these values must
	// not change between releases or platforms.
	k := FlowKey{Src: a16(client4), Dst: a16(vip4), SrcPort: 40000, DstPort: 80, Proto: ProtoTCP}
	k6 := FlowKey{Src: a16(client6), Dst: a16(vip6), SrcPort: 40000, DstPort: 443, Proto: ProtoUDP}
	got := [3]uint64{k.Hash(0), k.Hash(0x1234), k6.Hash(0)}
	want := goldenHashes
	if got != want {
		t.Fatalf("hashes %#x, want %#x", got, want)
	}
}

// goldenHashes were recorded when the hash was defined (amd64); any platform
// must reproduce them.
var goldenHashes = [3]uint64{0xa6e62f508308fa96, 0x6052c78749c3f609, 0xe52ec3c24be24353}

func TestFlowHashSensitivity(t *testing.T) {
	base := FlowKey{Src: a16(client4), Dst: a16(vip4), SrcPort: 40000, DstPort: 80, Proto: ProtoTCP}
	h := base.Hash(1)
	muts := []func(k *FlowKey){
		func(k *FlowKey) { k.Src[15]++ },
		func(k *FlowKey) { k.Dst[12]++ },
		func(k *FlowKey) { k.SrcPort++ },
		func(k *FlowKey) { k.DstPort++ },
		func(k *FlowKey) { k.Proto = ProtoUDP },
	}
	for i, m := range muts {
		k := base
		m(&k)
		if k.Hash(1) == h {
			t.Errorf("mutation %d does not change the hash", i)
		}
	}
	if base.Hash(2) == h {
		t.Error("seed does not change the hash")
	}
}

// TestFlowHashSpread checks that sequential client ports (the common case:
// one client, many connections) spread evenly over 64 shards (chi-square).
func TestFlowHashSpread(t *testing.T) {
	const shards, n = 64, 64 * 1000
	var count [shards]int
	k := FlowKey{Src: a16(client4), Dst: a16(vip4), DstPort: 80, Proto: ProtoTCP}
	for i := 0; i < n; i++ {
		k.SrcPort = uint16(1024 + i%60000)
		k.Src[15] = byte(i / 60000)
		count[k.Hash(99)&(shards-1)]++
	}
	exp := float64(n) / shards
	var chi float64
	for _, c := range count {
		chi += (float64(c) - exp) * (float64(c) - exp) / exp
	}
	// 63 degrees of freedom: p = 0.001 at about 103.4.
	if chi > 103.4 || math.IsNaN(chi) {
		t.Fatalf("chi-square %.1f over %d shards: %v", chi, shards, count)
	}
}
