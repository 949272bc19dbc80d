package healthcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// execChecker is the exec check (keepalived's MISC_CHECK with
// misc_dynamic): it runs a program with the target in its environment.
// Exit 0 is healthy with the weight unchanged, 1 is a failure, 2..255 is
// healthy with weight code-2. The program runs in its own process group,
// which is killed (SIGKILL) when the timeout expires and again when the
// program has exited, so that nothing it started outlives the probe.
type execChecker struct {
	program string
	args    []string
	env     []string
	timeout time.Duration
}

// Environment variables given to an exec check's program.
const (
	EnvService     = "ULVS_SERVICE"      // the virtual service (TargetID.Service)
	EnvServerAddr  = "ULVS_SERVER_ADDR"  // real server IP
	EnvServerPort  = "ULVS_SERVER_PORT"  // real server port
	EnvConnectAddr = "ULVS_CONNECT_ADDR" // where a network check would connect (connect_address applied)
	EnvConnectPort = "ULVS_CONNECT_PORT"
	EnvWeight      = "ULVS_WEIGHT"  // configured weight
	EnvTimeout     = "ULVS_TIMEOUT" // the check's timeout in seconds (decimal)
)

func newExecChecker(s *Spec) *execChecker {
	c := &s.Config
	ct := s.target()
	env := []string{
		"PATH=" + envOr("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
		EnvService + "=" + s.ID.Service,
		EnvServerAddr + "=" + s.ID.Server.Addr().String(),
		EnvServerPort + "=" + strconv.Itoa(int(s.ID.Server.Port())),
		EnvConnectAddr + "=" + ct.Addr().String(),
		EnvConnectPort + "=" + strconv.Itoa(int(ct.Port())),
		EnvWeight + "=" + strconv.Itoa(s.Weight),
		EnvTimeout + "=" + strconv.FormatFloat(c.Timeout.Seconds(), 'f', -1, 64),
	}
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+c.Env[k])
	}
	return &execChecker{program: c.Program, args: c.Args, env: env, timeout: c.Timeout}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// limitedBuffer keeps the first n bytes written and discards the rest.
type limitedBuffer struct {
	bytes.Buffer
	n int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.n - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (e *execChecker) check(ctx context.Context) Result {
	cmd := exec.CommandContext(ctx, e.program, e.args...)
	cmd.Env = e.env
	cmd.Dir = "/"
	out := &limitedBuffer{n: 512}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The whole group: the program and whatever it started.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// If a grandchild escaped the group and holds our output pipe, do not
	// wait for it beyond this.
	cmd.WaitDelay = 100 * time.Millisecond
	if err := cmd.Start(); err != nil {
		return failResult("exec: " + err.Error())
	}
	err := cmd.Wait() // always reaped: no zombies
	// Kill what the program left behind in its group (ESRCH when nothing).
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)

	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return failResult(fmt.Sprintf("timeout after %s: process group killed", e.timeout))
		}
		return failResult("canceled")
	}
	var exitErr *exec.ExitError
	code := 0
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		ws, _ := exitErr.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			return failResult("killed by signal " + ws.Signal().String() + outputSuffix(out))
		}
		code = exitErr.ExitCode()
	case errors.Is(err, exec.ErrWaitDelay):
		// The program exited 0 but a descendant kept its output open.
	default:
		return failResult("exec: " + err.Error())
	}
	switch {
	case code == 0:
		return okResult("exit code 0")
	case code == 1:
		return failResult("exit code 1" + outputSuffix(out))
	default:
		r := okResult(fmt.Sprintf("exit code %d: weight %d", code, code-2))
		r.Weight = code - 2
		return r
	}
}

// outputSuffix is ": first line of output" or "".
func outputSuffix(b *limitedBuffer) string {
	s := strings.TrimSpace(b.String())
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	if s == "" {
		return ""
	}
	return ": " + s
}
