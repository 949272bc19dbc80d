package config

import (
	"os"
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics, returns either a config or an error (never
// both), and an accepted config survives Marshal/Parse unchanged.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/example.toml", "testdata/full.toml", "testdata/health.toml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("[director]\npublic_interface = \"eth0\"\nreal_server = [ {address = 1} ]\n"))
	f.Add([]byte("[[virtual_server]]\n[[virtual_server.real_server]]\n[[virtual_server]]\nx.y.z = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.toml")
		if (c == nil) == (err == nil) {
			t.Fatalf("config %v and error %v", c, err)
		}
		if c == nil {
			return
		}
		c2, err := Parse(Marshal(c), "again.toml")
		if err != nil {
			t.Fatalf("Marshal output refused: %v\n%s", err, Marshal(c))
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip differs")
		}
	})
}
