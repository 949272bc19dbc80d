// Package lab builds network-namespace labs for ulvs: clients, one or two
// directors and N real servers, each a network namespace, joined by veth
// pairs to Linux bridges that live in a namespace of their own ("switch").
// Nothing is created in the root namespace; every name is prefixed with the
// lab's name (unique per run), so labs never collide with each other or
// with the host.
//
// Up builds a lab from a Spec and returns its addressing Plan as data (host
// names, namespaces, interfaces, MACs, IPv4/IPv6 addresses, VIPs,
// gateways), so that tests and daemon configurations are generated from
// it. Down deletes every namespace (and so every link), stops every process
// the lab started, by PID, and removes the state file (StateDir/lab-NAME.json)
// that lets DownByName clean up after a crash. A failing Up tears down what
// it built.
//
// # Addressing
//
// Public net 10.0.0.0/24 (fd00:10::/64), private net 10.0.1.0/24
// (fd00:11::/64); an IPv6 address repeats the IPv4 last octet's digits
// (10.0.0.11 -> fd00:10::11). MACs are 02:1a followed by the IPv4 address
// bytes. VIP 10.0.0.100 (fd00:10::100) in every mode.
//
//	clientN   10.0.0.(10+N)
//	dirN      10.0.0.(1+N); NAT private side 10.0.1.1 (one director) or
//	          10.0.1.(1+N) (two: the gateway 10.0.1.1 then floats)
//	rsN       NAT 10.0.1.(10+N), gateway 10.0.1.1; DR and TUN 10.0.0.(50+N)
//
// # NAT
//
//	client1               dir1 (ulvs)                  rs1, rs2, ...
//	eth0 10.0.0.11        eth0 10.0.0.2  eth1 10.0.1.1 eth0 10.0.1.1N, gw 10.0.1.1
//	   |                     |              |             |
//	===+====[br-public]======+              +==[br-private]=+=====
//	  10.0.0.0/24, VIP 10.0.0.100            10.0.1.0/24
//	  (bridges in netns NAME-switch; each host is netns NAME-HOST)
//
// The VIP is in the public subnet, so the client reaches it on-link: it
// ARPs for the VIP and ulvs, not the kernel, answers. No kernel anywhere
// holds the VIP. The directors have ip_forward=0 (IPv4 and IPv6): the
// kernel never forwards VIP traffic or the real servers' replies, ulvs does,
// in userspace. The real servers' default gateway is the director's private
// address, so replies come back through it.
//
// # DR
//
//	client1          dir1 (ulvs)      rs1              rs2
//	eth0 10.0.0.11   eth0 10.0.0.2    eth0 10.0.0.51   eth0 10.0.0.52
//	   |                |                |  lo: VIP       |  lo: VIP
//	===+================+===[br-public]==+================+====
//	  10.0.0.0/24, VIP 10.0.0.100; real servers: arp_ignore=1, arp_announce=2
//
// One L2 segment. Each real server holds the VIP on lo, where it answers no
// ARP (realserver.SetupDR, what `ulvs-realserver dr` does). The director
// sends the client's frames unchanged to a real server's MAC; the real
// server answers the client directly from the VIP.
//
// # TUN
//
//	client1          dir1 (ulvs)      rs1                      rs2
//	eth0 10.0.0.11   eth0 10.0.0.2    eth0 10.0.0.51           eth0 10.0.0.52
//	   |                |                |  ulvstun0: VIP         |  ulvstun0: VIP
//	===+================+===[br-public]==+========================+====
//	  dir1 -> rsN: IP-in-IP (outer 10.0.0.2 -> 10.0.0.5N); rsN -> client: direct
//
// The same single segment as DR. Each real server runs the userspace
// IP-in-IP decapsulator (`ulvs-realserver tun`, as a lab helper process),
// which holds the VIP on the TUN device ulvstun0. The director sends the
// client's packets inside IP-in-IP (protocol 4, or 41 for IPv6) to the real
// server's own address; the real server answers the client directly.
//
// # Hosts' processes
//
// Each real server runs the built-in server (RunHelper "serve"): HTTP
// answering its name, a UDP echo, and a UDP port answering its name. It is
// this executable re-executed with ULVS_LAB_HELPER=1, so any binary or test
// binary that imports lab can build a full lab with nothing installed.
// Offloads (tx checksum, scatter-gather, TSO/GSO, GRO) are off on every
// veth end.
package lab
