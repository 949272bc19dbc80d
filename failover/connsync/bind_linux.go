//go:build linux

package connsync

import "golang.org/x/sys/unix"

// bindToDevice restricts the socket to one interface (SO_BINDTODEVICE).
func bindToDevice(fd uintptr, ifname string) error {
	return unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
}
