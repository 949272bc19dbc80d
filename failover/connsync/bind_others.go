//go:build !linux

package connsync

import "errors"

// bindToDevice is only implemented on Linux.
func bindToDevice(uintptr, string) error {
	return errors.New("binding a socket to an interface is only implemented on Linux")
}
