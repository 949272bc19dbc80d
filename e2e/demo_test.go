package e2e

import (
	"context"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

var demoSplit = regexp.MustCompile(`(?m)^30 requests: rs1=10 rs2=10 rs3=10 failed=0$`)

// TestDemo runs what `sudo make demo` runs: ulvslab demo, next to the
// ulvsd binary it starts. It must succeed and show the 10/10/10 split in
// each of NAT, DR and TUN.
func TestDemo(t *testing.T) {
	t.Parallel()
	ulvslab := bin(t, "ulvslab")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ulvslab, "demo")
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ulvslab demo: %v\n%s", err, out)
	}
	if n := len(demoSplit.FindAll(out, -1)); n != 3 {
		t.Errorf("ulvslab demo printed the 10/10/10 split %d times, want 3 (NAT, DR, TUN):\n%s", n, out)
	}
	t.Logf("MEASURE ulvslab demo: %.1f s", time.Since(start).Seconds())
}
