package lab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named network namespaces are bind-mounted, as iproute2
// does, so that `ip netns`, `ip -n` and `nsenter --net=` see the lab's hosts.
const NetnsDir = "/run/netns"

// NetnsPath returns the bind-mount path of a named network namespace.
func NetnsPath(name string) string { return filepath.Join(NetnsDir, name) }

// createNetns creates a named network namespace without moving the calling
// goroutine's thread into it for longer than the call.
func createNetns(name string) error {
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	path := NetnsPath(name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create netns %s: %w", name, ErrExists)
		}
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	f.Close()

	errc := make(chan error, 1)
	go func() {
		errc <- onThreadInOwnNetns(func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("unshare: %w", err)
			}
			self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
			if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind-mount %s: %w", path, err)
			}
			return nil
		})
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return fmt.Errorf("create netns %s: %w", name, err)
	}
	return nil
}

// deleteNetns removes a named network namespace. A namespace that does not
// exist is not an error. The kernel destroys the namespace, and every link
// and address in it, once no process and no mount refers to it.
func deleteNetns(name string) error {
	path := NetnsPath(name)
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete netns %s: unmount: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// netnsExists reports whether the named namespace is mounted.
func netnsExists(name string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(NetnsPath(name), &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// netnsInode returns the inode number that identifies a namespace; it is
// what /proc/PID/ns/net links to ("net:[INODE]").
func netnsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// DoInNetns runs fn on a locked OS thread that has joined the network
// namespace at path. Sockets fn creates belong to that namespace for their
// whole life, whichever goroutine uses them later. /proc/sys/net opened by fn
// shows that namespace's sysctls.
func DoInNetns(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- RunInNetns(path, fn) }()
	return <-errc
}

// RunInNetns is DoInNetns on the calling goroutine: its OS thread enters the
// namespace at path for fn and returns to its own namespace afterwards.
// Tests use it so that fn may call t.Fatal (the thread is then discarded
// with the goroutine, still locked).
func RunInNetns(path string, fn func() error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer ns.Close()
	return onThreadInOwnNetns(func() error {
		if err := unix.Setns(int(ns), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("setns %s: %w", path, err)
		}
		return fn()
	})
}

// onThreadInOwnNetns runs fn on a locked OS thread and then moves the thread
// back to the network namespace it started in, so that it can be reused.
// If that fails, the thread stays locked and is discarded when the
// goroutine exits.
func onThreadInOwnNetns(fn func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open own network namespace: %w", err)
	}
	defer unix.Close(orig)
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		return errors.Join(ferr, fmt.Errorf("return to own network namespace: %w", err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// handleAt opens a netlink handle inside the namespace at path.
func handleAt(path string) (*netlink.Handle, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", path, err)
	}
	return h, nil
}

// pidNetnsInode returns the inode of a process's network namespace, or 0 if
// the process is gone.
func pidNetnsInode(pid int) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil {
		return 0
	}
	return st.Ino
}

// processesIn lists the PIDs whose network namespace has the given inode.
func processesIn(inode uint64) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || fmt.Sprint(pid) != e.Name() {
			continue
		}
		if pid != os.Getpid() && pidNetnsInode(pid) == inode {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ethtool ioctl commands and string sets (linux/ethtool.h).
const (
	ethtoolGSTRINGS   = 0x1b
	ethtoolGSSETINFO  = 0x37
	ethtoolSFEATURES  = 0x3b
	ethSSFeatures     = 4
	ethGStringLen     = 32
	ethtoolHeaderSize = 8
)

type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte
}

func ethtoolIoctl(fd int, dev string, buf []byte) error {
	var ifr ifreqData
	copy(ifr.name[:], dev)
	ifr.data = unsafe.Pointer(&buf[0])
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(buf)
	if e != 0 {
		return e
	}
	return nil
}

// offloadOff says whether a feature (by its ethtool name) is one the lab
// turns off: every tx checksum, scatter-gather, every segmentation offload
// (TSO, GSO, tunnels) and GRO, so that captures and counts see the packets
// on the wire (LAB-NOTES).
func offloadOff(name string) bool {
	switch {
	case strings.HasPrefix(name, "tx-checksum-"), strings.HasPrefix(name, "tx-scatter-gather"),
		strings.HasPrefix(name, "tx-") && strings.HasSuffix(name, "-segmentation"),
		name == "rx-gro", name == "rx-gro-list", name == "rx-udp-gro-forwarding", name == "rx-lro":
		return true
	}
	return false
}

// offloadsOff turns the offloads offloadOff names off on a device of the
// calling thread's namespace, with ETHTOOL_SFEATURES (what `ethtool -K`
// does), so that no ethtool binary is needed.
func offloadsOff(dev string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("offloads off %s: %w", dev, err)
	}
	defer unix.Close(fd)
	info := make([]byte, 8+8+4)
	binary.NativeEndian.PutUint32(info[0:], ethtoolGSSETINFO)
	binary.NativeEndian.PutUint64(info[8:], 1<<ethSSFeatures)
	if err := ethtoolIoctl(fd, dev, info); err != nil {
		return fmt.Errorf("offloads off %s: ethtool string set info: %w", dev, err)
	}
	n := int(binary.NativeEndian.Uint32(info[16:]))
	if n == 0 || n > 4096 {
		return fmt.Errorf("offloads off %s: %d features", dev, n)
	}
	strs := make([]byte, 12+n*ethGStringLen)
	binary.NativeEndian.PutUint32(strs[0:], ethtoolGSTRINGS)
	binary.NativeEndian.PutUint32(strs[4:], ethSSFeatures)
	binary.NativeEndian.PutUint32(strs[8:], uint32(n))
	if err := ethtoolIoctl(fd, dev, strs); err != nil {
		return fmt.Errorf("offloads off %s: ethtool feature names: %w", dev, err)
	}
	blocks := (n + 31) / 32
	set := make([]byte, ethtoolHeaderSize+blocks*8)
	binary.NativeEndian.PutUint32(set[0:], ethtoolSFEATURES)
	binary.NativeEndian.PutUint32(set[4:], uint32(blocks))
	for i := 0; i < n; i++ {
		raw := strs[12+i*ethGStringLen : 12+(i+1)*ethGStringLen]
		if j := bytes.IndexByte(raw, 0); j >= 0 {
			raw = raw[:j]
		}
		if !offloadOff(string(raw)) {
			continue
		}
		off := ethtoolHeaderSize + (i/32)*8 // valid; requested stays 0
		binary.NativeEndian.PutUint32(set[off:], binary.NativeEndian.Uint32(set[off:])|1<<(i%32))
	}
	if err := ethtoolIoctl(fd, dev, set); err != nil {
		return fmt.Errorf("offloads off %s: ethtool set features: %w", dev, err)
	}
	return nil
}

// writeSysctl writes a value under /proc/sys in the calling thread's
// namespace; key uses dots ("net.ipv4.ip_forward").
func writeSysctl(key, value string) error {
	p := "/proc/sys/" + dotsToSlashes(key)
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, value, err)
	}
	return nil
}

func dotsToSlashes(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == '.' {
			b[i] = '/'
		}
	}
	return string(b)
}
