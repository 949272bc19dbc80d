package ipvsadm

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/ulvs/ulvs/config"
)

func TestNetResolverServices(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services")
	data := "# test\nhttp\t80/tcp\twww www-http # WorldWideWeb\nhttp 80/udp\ndomain 53/tcp\ndomain 53/udp\nalt 80/tcp\nbad line\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &NetResolver{ServicesFile: path}
	if p, err := r.LookupPort(config.TCP, "www"); err != nil || p != 80 {
		t.Errorf("www/tcp = %d, %v", p, err)
	}
	if p, err := r.LookupPort(config.UDP, "domain"); err != nil || p != 53 {
		t.Errorf("domain/udp = %d, %v", p, err)
	}
	if _, err := r.LookupPort(config.UDP, "www"); err == nil {
		t.Error("www/udp found")
	}
	if n := r.PortName(config.TCP, 80); n != "http" {
		t.Errorf("80/tcp = %q (the first entry wins)", n)
	}
	if n := r.PortName(config.TCP, 81); n != "" {
		t.Errorf("81/tcp = %q", n)
	}
}

// The system resolver through /etc/hosts (no network needed).
func TestNetResolverHosts(t *testing.T) {
	r := &NetResolver{}
	a, err := r.LookupHost("localhost")
	if err != nil || a != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("localhost = %v, %v", a, err)
	}
	if n := r.HostName(netip.MustParseAddr("127.0.0.1")); n == "" {
		t.Error("127.0.0.1 has no name")
	}
	// Cached: the second call answers from the map.
	if r.names == nil || r.HostName(netip.MustParseAddr("127.0.0.1")) == "" {
		t.Error("not cached")
	}
}
