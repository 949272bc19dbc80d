//go:build tools

// Package tools pins the libraries that ulvs is designed around, so that
// they stay in go.mod while the packages that use them are being written.
package tools

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/google/gopacket"
	_ "github.com/mdlayher/packet"
	_ "github.com/rs/zerolog"
	_ "github.com/songgao/water"
	_ "github.com/vishvananda/netlink"
	_ "golang.org/x/net/bpf"
	_ "golang.org/x/sys/unix"
)
