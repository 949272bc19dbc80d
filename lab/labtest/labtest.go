// Package labtest builds labs for tests: it skips when not root (and fails
// under CI=true instead), gives every lab a unique name and tears it down
// with t.Cleanup, even when the test fails.
package labtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ulvs/ulvs/lab"
)

// RequireRoot skips the test when not root, with the reason; under CI=true
// it fails instead, because CI must run every test.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root (network namespaces), and CI=true forbids skipping it")
	}
	t.Skip("skipped: needs root to create network namespaces (run as root; under CI=true it fails instead)")
}

// New builds a lab for the test and registers its Down with t.Cleanup. An
// empty spec.Name gets a unique name (UniqueName). The state file goes to
// the default state directory, so that a test binary killed before its
// cleanups leaves a lab that `ulvslab down --name` (or the next New, see
// SweepStale) removes.
func New(t testing.TB, spec lab.Spec) *lab.Lab {
	t.Helper()
	RequireRoot(t)
	sweepOnce.Do(func() { SweepStale(spec.StateDir) })
	if spec.Name == "" {
		spec.Name = UniqueName()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := lab.Up(ctx, spec)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}

var (
	counter   atomic.Int64
	sweepOnce sync.Once
	testName  = regexp.MustCompile(`^t([0-9]+)-[0-9]+$`)
)

// UniqueName returns a lab name unique on this machine: "t" + this
// process's PID + "-" + a counter.
func UniqueName() string {
	return fmt.Sprintf("t%d-%d", os.Getpid(), counter.Add(1))
}

// SweepStale tears down the labs that UniqueName named for test processes
// that no longer exist (killed by a timeout before their cleanups ran). It
// touches nothing else.
func SweepStale(stateDir string) {
	names, err := lab.List(stateDir)
	if err != nil {
		return
	}
	for _, n := range names {
		m := testName.FindStringSubmatch(n)
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = lab.DownByName(stateDir, n)
		}
	}
}
