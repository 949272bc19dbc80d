package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ulvs/ulvs/realserver"
)

// Lab is a built lab. Its methods are safe for concurrent use.
type Lab struct {
	Plan Plan
	spec Spec

	mu     sync.Mutex
	procs  []*Process
	closed bool
}

// Process is a background process the lab started in one of its hosts.
type Process struct {
	Host string   `json:"host"`
	Argv []string `json:"argv"`
	PID  int      `json:"pid"`
	Log  string   `json:"log"`   // file holding its stdout and stderr
	NS   uint64   `json:"netns"` // inode of its network namespace

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Output returns what the process has written so far to stdout and
// stderr (its log file). The log is deleted with the lab.
func (p *Process) Output() ([]byte, error) { return os.ReadFile(p.Log) }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its exit error.
func (p *Process) Wait() error { <-p.done; return p.err }

// Stop sends SIGTERM, waits up to grace, then SIGKILLs, and waits.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}

// state is what lab-NAME.json holds, so that Down works from another
// process or after a crash.
type state struct {
	Plan      Plan       `json:"plan"`
	Processes []*Process `json:"processes"`
}

// StatePath returns where a lab's state file lives.
func StatePath(stateDir, name string) string {
	if stateDir == "" {
		stateDir = "/run/ulvs"
	}
	return filepath.Join(stateDir, "lab-"+name+".json")
}

// Up builds the lab described by spec: namespaces, bridges, veths,
// addresses, routes, sysctls, the real servers' DR or TUN set-up and their
// built-in servers. On error it tears down what it built.
func Up(ctx context.Context, spec Spec) (*Lab, error) {
	s, err := spec.normalize()
	if err != nil {
		return nil, err
	}
	plan, err := MakePlan(s)
	if err != nil {
		return nil, err
	}
	for _, ns := range plan.Namespaces() {
		if netnsExists(ns) {
			return nil, fmt.Errorf("lab %s: namespace %s: %w", plan.Name, ns, ErrExists)
		}
	}
	if _, err := os.Stat(StatePath(s.StateDir, plan.Name)); err == nil {
		return nil, fmt.Errorf("lab %s: state file %s: %w (run ulvslab down --name %s)", plan.Name, StatePath(s.StateDir, plan.Name), ErrExists, plan.Name)
	}
	l := &Lab{Plan: plan, spec: s}
	if err := os.MkdirAll(s.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("lab %s: state dir: %w", plan.Name, err)
	}
	// The state is written before anything is created, so that a crash at
	// any point leaves enough behind for `ulvslab down` to clean up.
	if err := l.saveState(); err != nil {
		return nil, err
	}
	if err := l.build(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("lab %s: %w", plan.Name, err), l.Down())
	}
	return l, nil
}

func (l *Lab) build(ctx context.Context) error {
	p := &l.Plan
	for _, ns := range p.Namespaces() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := createNetns(ns); err != nil {
			return err
		}
	}
	if err := l.buildSwitch(); err != nil {
		return err
	}
	for i := range p.Hosts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.buildHost(&p.Hosts[i]); err != nil {
			return fmt.Errorf("host %s: %w", p.Hosts[i].Name, err)
		}
	}
	for _, h := range p.RealServers() {
		if err := l.setupRealServer(ctx, h); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	return nil
}

func (l *Lab) buildSwitch() error {
	p := &l.Plan
	path := NetnsPath(p.Switch)
	h, err := handleAt(path)
	if err != nil {
		return err
	}
	defer h.Close()
	// The bridges only switch frames: no IPv6 link-local addresses, router
	// solicitations or MLD reports of their own on the lab's segments.
	if err := DoInNetns(path, func() error {
		for _, k := range []string{"net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"} {
			if err := writeSysctl(k, "1"); err != nil {
				return err
			}
		}
		// With br_netfilter loaded, bridged frames would go through
		// netfilter, which validates (and silently drops) malformed IP
		// before it reaches the director, and costs every bridged packet
		// netfilter work. A lab's switch is a plain switch.
		for _, k := range []string{"iptables", "ip6tables", "arptables"} {
			key := "net.bridge.bridge-nf-call-" + k
			if _, err := os.Stat("/proc/sys/" + dotsToSlashes(key)); err != nil {
				continue // br_netfilter not loaded: nothing to turn off
			}
			if err := writeSysctl(key, "0"); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("switch: %w", err)
	}
	if err := setUp(h, "lo"); err != nil {
		return fmt.Errorf("switch: %w", err)
	}
	off := false
	for _, n := range p.Nets {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.Bridge}, MulticastSnooping: &off}
		if err := h.LinkAdd(br); err != nil {
			return fmt.Errorf("switch: add bridge %s: %w", n.Bridge, err)
		}
		if err := h.LinkSetUp(br); err != nil {
			return fmt.Errorf("switch: bridge %s up: %w", n.Bridge, err)
		}
	}
	return nil
}

func setUp(h *netlink.Handle, name string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("link %s up: %w", name, err)
	}
	return nil
}

func (l *Lab) bridgeOf(net string) string {
	for _, n := range l.Plan.Nets {
		if n.Name == net {
			return n.Bridge
		}
	}
	return ""
}

func (l *Lab) buildHost(host *Host) error {
	swPath := NetnsPath(l.Plan.Switch)
	sw, err := handleAt(swPath)
	if err != nil {
		return err
	}
	defer sw.Close()
	hostPath := NetnsPath(host.Netns)
	hf, err := os.Open(hostPath)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", hostPath, err)
	}
	defer hf.Close()
	h, err := handleAt(hostPath)
	if err != nil {
		return err
	}
	defer h.Close()

	// Veths are created in the switch namespace with their peer directly
	// in the host's: nothing ever appears in the root namespace.
	for _, ifc := range host.Ifaces {
		br, err := sw.LinkByName(l.bridgeOf(ifc.Net))
		if err != nil {
			return fmt.Errorf("bridge %s: %w", l.bridgeOf(ifc.Net), err)
		}
		veth := &netlink.Veth{
			LinkAttrs:        netlink.LinkAttrs{Name: ifc.Port, MasterIndex: br.Attrs().Index},
			PeerName:         ifc.Name,
			PeerHardwareAddr: ifc.HardwareAddr(),
			PeerNamespace:    netlink.NsFd(int(hf.Fd())),
		}
		if err := sw.LinkAdd(veth); err != nil {
			return fmt.Errorf("add veth %s (switch) <-> %s: %w", ifc.Port, ifc.Name, err)
		}
		if err := setUp(sw, ifc.Port); err != nil {
			return fmt.Errorf("switch: %w", err)
		}
	}
	if err := DoInNetns(swPath, func() error {
		for _, ifc := range host.Ifaces {
			if err := offloadsOff(ifc.Port); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}

	// Sysctls and offloads inside the host.
	if err := DoInNetns(hostPath, func() error {
		const fwd = "0"
		// Directors never forward in the kernel: ulvs does it in userspace,
		// and a kernel that forwarded VIP or NAT-return traffic too would
		// send every packet twice.
		if err := writeSysctl("net.ipv4.ip_forward", fwd); err != nil {
			return err
		}
		if err := writeSysctl("net.ipv6.conf.all.forwarding", fwd); err != nil {
			return err
		}
		for _, ifc := range host.Ifaces {
			if err := offloadsOff(ifc.Name); err != nil {
				return err
			}
			if !ifc.Addr6.IsValid() {
				continue
			}
			if err := writeSysctl("net.ipv6.conf."+ifc.Name+".accept_dad", "0"); err != nil {
				return err
			}
			if err := writeSysctl("net.ipv6.conf."+ifc.Name+".accept_ra", "0"); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}

	if err := setUp(h, "lo"); err != nil {
		return err
	}
	for _, ifc := range host.Ifaces {
		link, err := h.LinkByName(ifc.Name)
		if err != nil {
			return fmt.Errorf("link %s: %w", ifc.Name, err)
		}
		for _, a := range []netip.Prefix{ifc.Addr4, ifc.Addr6} {
			if !a.IsValid() {
				continue
			}
			addr := &netlink.Addr{IPNet: prefixToIPNet(a), Flags: unix.IFA_F_NODAD}
			if err := h.AddrAdd(link, addr); err != nil {
				return fmt.Errorf("add address %s on %s: %w", a, ifc.Name, err)
			}
		}
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("link %s up: %w", ifc.Name, err)
		}
	}
	for _, gw := range []netip.Addr{host.Gateway4, host.Gateway6} {
		if !gw.IsValid() {
			continue
		}
		link, err := h.LinkByName(host.Ifaces[0].Name)
		if err != nil {
			return err
		}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw.AsSlice()}
		if gw.Is6() {
			r.Family = netlink.FAMILY_V6
		}
		if err := h.RouteAdd(r); err != nil {
			return fmt.Errorf("add default route via %s: %w", gw, err)
		}
	}
	return nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}
}

// VIPs returns the lab's VIPs (one, or two with IPv6).
func (p *Plan) VIPs() []netip.Addr {
	v := []netip.Addr{p.VIP4}
	if p.VIP6.IsValid() {
		v = append(v, p.VIP6)
	}
	return v
}

func (l *Lab) setupRealServer(ctx context.Context, h *Host) error {
	if !l.spec.NoRealServerSetup {
		switch l.Plan.Mode {
		case DR:
			if err := DoInNetns(NetnsPath(h.Netns), func() error {
				_, err := realserver.SetupDR(realserver.DRConfig{VIPs: l.Plan.VIPs(), StateDir: l.realserverStateDir()})
				return err
			}); err != nil {
				return fmt.Errorf("DR set-up: %w", err)
			}
		case TUN:
			argv := []string{"realserver-tun"}
			for _, v := range l.Plan.VIPs() {
				argv = append(argv, "--vip", v.String())
			}
			argv = append(argv, "--state-dir", l.realserverStateDir())
			if _, err := l.startHelper(ctx, h.Name, argv...); err != nil {
				return fmt.Errorf("TUN decapsulator: %w", err)
			}
		}
	}
	if l.spec.NoServers {
		return nil
	}
	_, err := l.startHelper(ctx, h.Name, "serve", "--name", h.Name,
		"--http", strconv.Itoa(l.Plan.HTTPPort),
		"--udp-echo", strconv.Itoa(l.Plan.UDPEchoPort),
		"--udp-name", strconv.Itoa(l.Plan.UDPNamePort))
	if err != nil {
		return fmt.Errorf("built-in server: %w", err)
	}
	return nil
}

func (l *Lab) realserverStateDir() string {
	return filepath.Join(l.spec.StateDir, "lab-"+l.Plan.Name+".d")
}

// startHelper starts one of the lab's helper roles (see RunHelper) and
// waits until it reports ready on the pipe it gets as file descriptor 3.
func (l *Lab) startHelper(ctx context.Context, host string, args ...string) (*Process, error) {
	argv := l.spec.Helper
	env := []string{}
	if len(argv) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own executable: %w", err)
		}
		argv = []string{exe}
		env = append(env, helperEnv+"=1")
	}
	argv = append(append([]string(nil), argv...), args...)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	p, err := l.start(host, argv, env, w)
	w.Close()
	if err != nil {
		return nil, err
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil {
			ready <- fmt.Errorf("exited before ready")
			return
		}
		if strings.TrimSpace(line) != "ready" {
			ready <- fmt.Errorf("said %q instead of ready", strings.TrimSpace(line))
			return
		}
		ready <- nil
	}()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case err = <-ready:
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = fmt.Errorf("not ready after 10s")
	}
	if err != nil {
		// The log is deleted with the lab: say what it held.
		return nil, fmt.Errorf("%s in %s: %w; its output: %q", strings.Join(args, " "), host, err, logTail(p.Log, 1024))
	}
	return p, nil
}

func logTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		f.Seek(st.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}

// Exec returns a command that runs argv inside the host's network
// namespace ("switch" names the bridges' namespace), through nsenter, which
// execs argv in place: the command's PID is the PID of argv itself. For an
// unknown host, the command's Start fails with ErrNoHost.
func (l *Lab) Exec(ctx context.Context, host string, argv ...string) *exec.Cmd {
	var ns string
	if h, ok := l.Plan.Host(host); ok {
		ns = h.Netns
	} else if host == "switch" {
		ns = l.Plan.Switch
	}
	args := append([]string{"--net=" + NetnsPath(ns), "--"}, argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	if ns == "" {
		cmd.Err = fmt.Errorf("lab %s: %w: %q", l.Plan.Name, ErrNoHost, host)
	}
	return cmd
}

// Start runs argv in the background inside the host's namespace, with its
// output in a log file under the state directory. Down stops it (SIGTERM,
// then SIGKILL) by its PID.
func (l *Lab) Start(host string, argv ...string) (*Process, error) {
	return l.start(host, argv, nil, nil)
}

func (l *Lab) start(host string, argv, env []string, ready *os.File) (*Process, error) {
	h, ok := l.Plan.Host(host)
	if !ok {
		return nil, fmt.Errorf("start %q: %w: %s", strings.Join(argv, " "), ErrNoHost, host)
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("start in %s: empty command", host)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fmt.Errorf("start in %s: lab %s is down", host, l.Plan.Name)
	}
	n := len(l.procs)
	l.mu.Unlock()

	logPath := filepath.Join(l.spec.StateDir, fmt.Sprintf("lab-%s.d", l.Plan.Name), fmt.Sprintf("%s-%d-%s.log", host, n, filepath.Base(argv[0])))
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := l.Exec(context.Background(), host, argv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if ready != nil {
		cmd.ExtraFiles = []*os.File{ready}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %q in %s: %w", strings.Join(argv, " "), host, err)
	}
	inode, _ := netnsInode(NetnsPath(h.Netns))
	p := &Process{Host: host, Argv: argv, PID: cmd.Process.Pid, Log: logPath, NS: inode, cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()

	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	if err := l.saveState(); err != nil {
		return p, err
	}
	return p, nil
}

// Processes returns the processes the lab started.
func (l *Lab) Processes() []*Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Process(nil), l.procs...)
}

// Do runs fn on a thread inside the host's network namespace (see DoInNetns).
func (l *Lab) Do(host string, fn func() error) error {
	h, ok := l.Plan.Host(host)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoHost, host)
	}
	return DoInNetns(NetnsPath(h.Netns), fn)
}

// Sysctl sets a sysctl inside the host's namespace; key is dotted
// ("net.ipv4.ip_forward"), and may not contain interface names with dots.
func (l *Lab) Sysctl(host, key, value string) error {
	return l.Do(host, func() error { return writeSysctl(key, value) })
}

// ReadSysctl reads a sysctl inside the host's namespace.
func (l *Lab) ReadSysctl(host, key string) (string, error) {
	var v string
	err := l.Do(host, func() error {
		b, err := os.ReadFile("/proc/sys/" + dotsToSlashes(key))
		v = strings.TrimSpace(string(b))
		return err
	})
	return v, err
}

// Dialer returns a dial function whose sockets live in the host's namespace,
// for in-process clients (http.Transport.DialContext, for example).
func (l *Lab) Dialer(host string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := l.Do(host, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// HTTPClient returns an HTTP client whose connections start in the host's
// namespace. Keep-alive is off, so that every request is a new connection
// (and a new scheduling decision).
func (l *Lab) HTTPClient(host string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: l.Dialer(host), DisableKeepAlives: true},
	}
}

func (l *Lab) saveState() error {
	l.mu.Lock()
	st := state{Plan: l.Plan, Processes: l.procs}
	b, err := json.MarshalIndent(st, "", "  ")
	l.mu.Unlock()
	if err != nil {
		return err
	}
	path := StatePath(l.spec.StateDir, l.Plan.Name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("lab %s: write state: %w", l.Plan.Name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("lab %s: write state: %w", l.Plan.Name, err)
	}
	return nil
}

// Down stops the lab's processes and deletes its namespaces (with every
// link in them) and its state. It is idempotent.
func (l *Lab) Down() error {
	l.mu.Lock()
	l.closed = true
	procs := l.procs
	l.mu.Unlock()
	var wg sync.WaitGroup
	var loaded []*Process
	for _, p := range procs {
		if p.cmd == nil { // loaded from a state file: not our child
			loaded = append(loaded, p)
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = p.Stop(3 * time.Second) }()
	}
	wg.Wait()
	return teardown(l.Plan, l.spec.StateDir, loaded)
}

// teardown deletes a lab's namespaces and state. Processes listed in extra
// (from a state file) are killed if they still run inside a lab namespace.
func teardown(p Plan, stateDir string, extra []*Process) error {
	var errs []error
	for _, pr := range extra {
		if pr.NS != 0 && pidNetnsInode(pr.PID) == pr.NS {
			_ = syscall.Kill(pr.PID, syscall.SIGTERM)
		}
	}
	for _, pr := range extra {
		deadline := time.Now().Add(3 * time.Second)
		for pr.NS != 0 && pidNetnsInode(pr.PID) == pr.NS && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if pr.NS != 0 && pidNetnsInode(pr.PID) == pr.NS {
			_ = syscall.Kill(pr.PID, syscall.SIGKILL)
		}
	}
	var left []string
	for _, ns := range p.Namespaces() {
		if ino, err := netnsInode(NetnsPath(ns)); err == nil && netnsExists(ns) {
			for _, pid := range processesIn(ino) {
				left = append(left, fmt.Sprintf("%d (in %s)", pid, ns))
			}
		}
		if err := deleteNetns(ns); err != nil {
			errs = append(errs, err)
		}
	}
	if len(left) > 0 {
		errs = append(errs, fmt.Errorf("%w: %s (not started by the lab; they keep their namespaces alive)", ErrLeftover, strings.Join(left, ", ")))
	}
	if err := os.RemoveAll(filepath.Join(stateDirOr(stateDir), "lab-"+p.Name+".d")); err != nil {
		errs = append(errs, err)
	}
	if err := os.Remove(StatePath(stateDir, p.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func stateDirOr(d string) string {
	if d == "" {
		return "/run/ulvs"
	}
	return d
}

// Load reads a lab's persisted state (for `ulvslab exec` and `down` from
// another process). The returned Lab can Exec, Start and Down.
func Load(stateDir, name string) (*Lab, error) {
	b, err := os.ReadFile(StatePath(stateDir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lab %s: %w (no %s)", name, ErrNotFound, StatePath(stateDir, name))
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("lab %s: state %s: %w", name, StatePath(stateDir, name), err)
	}
	l := &Lab{Plan: st.Plan, spec: Spec{Name: name, Mode: st.Plan.Mode, StateDir: stateDirOr(stateDir)}}
	for _, p := range st.Processes {
		p.done = make(chan struct{})
		l.procs = append(l.procs, p)
	}
	return l, nil
}

// DownByName tears down a lab from its state file, even one whose creator
// crashed: processes recorded there are stopped if they still run in the
// lab's namespaces, then the namespaces are deleted. Without a state file it
// deletes every namespace named NAME-*.
func DownByName(stateDir, name string) error {
	l, err := Load(stateDir, name)
	if errors.Is(err, ErrNotFound) {
		ents, rerr := os.ReadDir(NetnsDir)
		if rerr != nil {
			return err
		}
		// Only names this package makes: NAME-switch, NAME-clientN,
		// NAME-dirN, NAME-rsN (so lab "a" never takes lab "a-b"'s).
		re := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `-(switch|client[0-9]+|dir[0-9]+|rs[0-9]+)$`)
		p := Plan{Name: name, Switch: name + "-switch"}
		for _, e := range ents {
			if re.MatchString(e.Name()) && e.Name() != p.Switch {
				p.Hosts = append(p.Hosts, Host{Netns: e.Name()})
			}
		}
		if len(p.Hosts) == 0 && !netnsExists(p.Switch) {
			return err
		}
		return teardown(p, stateDir, nil)
	}
	if err != nil {
		return err
	}
	return teardown(l.Plan, stateDir, l.procs)
}

// List returns the names of the labs with a state file in stateDir.
func List(stateDir string) ([]string, error) {
	ents, err := os.ReadDir(stateDirOr(stateDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "lab-") && strings.HasSuffix(n, ".json") {
			names = append(names, strings.TrimSuffix(strings.TrimPrefix(n, "lab-"), ".json"))
		}
	}
	return names, nil
}
