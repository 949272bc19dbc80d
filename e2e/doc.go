// Package e2e holds ulvs's end-to-end tests: for each forwarding method
// (NAT, DR, TUN) they build a network-namespace lab, run ulvsd on the
// director, nginx on three real servers and curl, wrk and in-process
// clients on the client hosts, and check through the VIP what an LVS user
// relies on: the schedulers' distributions, intact large downloads, UDP
// services, IPv6 VIPs, draining with weight 0, a silent director kernel
// with valid checksums on the wire, and malformed packets counted and
// dropped while traffic flows. They need root (they skip without it, and
// fail instead under CI=true) and the tools scripts/test-deps.sh installs.
//
// The package has no code of its own besides this file: everything is in
// the _test.go files, run by `make test`.
package e2e
