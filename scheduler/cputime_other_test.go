//go:build !linux

package scheduler

func threadCPU() int64 { return 0 }
