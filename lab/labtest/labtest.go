// Package labtest builds labs for tests: it skips when not root (and fails
// under CI=true instead), gives every lab a unique name and tears it down
// with t.Cleanup, even when the test fails.
package labtest

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
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

// New builds a lab for the test. An empty spec.Name gets a unique name
// ("t" + PID + a counter). The lab's state goes to a temporary directory.
func New(t testing.TB, spec lab.Spec) *lab.Lab {
	t.Helper()
	RequireRoot(t)
	if spec.Name == "" {
		spec.Name = UniqueName()
	}
	if spec.StateDir == "" {
		spec.StateDir = t.TempDir()
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

var counter atomic.Int64

// UniqueName returns a lab name unique on this machine for this process.
func UniqueName() string {
	return fmt.Sprintf("t%d-%d", os.Getpid(), counter.Add(1))
}
