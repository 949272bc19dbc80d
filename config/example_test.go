package config_test

import (
	"fmt"

	"github.com/ulvs/ulvs/config"
)

func ExampleParse() {
	_, err := config.Parse([]byte(`
[director]
public_interface = "eth0"

[[virtual_server]]
protocol = "tcp"
address = "10.0.0.100:80"

  [[virtual_server.real_server]]
  address = "10.0.1.11"
  method = "nat"
  weight = -3
`), "ulvsd.toml")
	fmt.Println(err)
	// Output: ulvsd.toml:12: virtual_server[0].real_server[0].weight: -3 out of range 0..65535
}

func ExampleDiff() {
	old, _ := config.Parse([]byte(`
[director]
public_interface = "eth0"
[[virtual_server]]
protocol = "tcp"
address = "10.0.0.100:80"
  [[virtual_server.real_server]]
  address = "10.0.1.11"
  method = "nat"
`), "old.toml")
	cur := old.Clone()
	cur.VirtualServers[0].Scheduler = "rr"
	cur.VirtualServers[0].RealServers[0].Weight = 0
	for _, op := range config.Diff(old, cur).Ops {
		fmt.Println(op)
	}
	// Output:
	// edit-service tcp 10.0.0.100:80 rr
	// edit-server tcp 10.0.0.100:80 10.0.1.11:80 nat weight 0 thresholds 0/0
}
