package dataplane

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBackgroundWaitsForQuiet keeps CPU 0 busy with a spinning thread and
// checks that background reports it, says that it waits, and gives up
// after the wait it was given.
func TestBackgroundWaitsForQuiet(t *testing.T) {
	var stop atomic.Bool
	spinning := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var set unix.CPUSet
		set.Set(0)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			spinning <- err
			return
		}
		spinning <- nil
		for end := time.Now().Add(10 * time.Second); !stop.Load() && time.Now().Before(end); {
		}
	}()
	t.Cleanup(func() { stop.Store(true) })
	if err := <-spinning; err != nil {
		t.Skipf("skipped: cannot pin a thread to CPU 0: %v", err)
	}
	var log bytes.Buffer
	b := &bench{o: Options{Idle: 50 * time.Millisecond}, log: &log}
	start := time.Now()
	bg, err := b.background(context.Background(), []int{0}, 300*time.Millisecond)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if bg <= quietBusy {
		t.Errorf("background %.2f with a thread spinning on CPU 0, want > %.2f", bg, quietBusy)
	}
	if !strings.Contains(log.String(), "waiting up to 300ms") {
		t.Errorf("log does not say it waits: %q", log.String())
	}
	if took < 300*time.Millisecond {
		t.Errorf("returned after %v, before the 300ms wait was over", took)
	}
	// A cancelled context ends the wait at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.background(ctx, []int{0}, time.Minute); err == nil {
		t.Error("background with a cancelled context: no error")
	}
}
