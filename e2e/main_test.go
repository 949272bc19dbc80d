package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ulvs/ulvs/lab/labtest"
)

// binDir holds the binaries TestMain built (ulvsd, ulvsadm, ulvslab); buildErr
// says why it could not.
var (
	binDir   string
	buildErr error
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	// Build only where the tests will run: as root, or under CI=true (where
	// the tests fail rather than skip without root).
	if os.Geteuid() == 0 || os.Getenv("CI") == "true" {
		dir, err := os.MkdirTemp("", "ulvs-e2e-bin-")
		if err != nil {
			buildErr = err
		} else {
			defer os.RemoveAll(dir)
			binDir = dir
			buildErr = buildBinaries(dir)
		}
	}
	return m.Run()
}

// buildBinaries builds the shipped binaries, pure Go, into dir.
func buildBinaries(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is not in $PATH: %w", err)
	}
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", dir+string(filepath.Separator),
		"github.com/ulvs/ulvs/cmd/ulvsd", "github.com/ulvs/ulvs/cmd/ulvsadm", "github.com/ulvs/ulvs/cmd/ulvslab")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build of ulvsd, ulvsadm, ulvslab: %v\n%s", err, out)
	}
	return nil
}

// bin returns the path of a built binary, failing the test when the build
// failed. It skips (or fails under CI=true) without root.
func bin(t testing.TB, name string) string {
	t.Helper()
	labtest.RequireRoot(t)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	if binDir == "" {
		t.Fatal("binaries were not built")
	}
	return filepath.Join(binDir, name)
}

// needTools skips the test when a tool it runs is missing (scripts/test-deps.sh
// installs them), and fails instead under CI=true.
func needTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed (scripts/test-deps.sh installs it) and CI=true forbids skipping", tool)
			}
			t.Skipf("skipped: %s is not installed (run scripts/test-deps.sh as root)", tool)
		}
	}
}
