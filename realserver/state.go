package realserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Errors.
var (
	ErrNoVIP   = errors.New("realserver: no VIP given")
	ErrBadVIP  = errors.New("realserver: bad VIP")
	ErrNoState = errors.New("realserver: nothing recorded to undo")
)

// DefaultStateDir is where the set-ups record what they changed, so that
// --undo reverses exactly that.
const DefaultStateDir = "/run/ulvs/realserver"

// sysctlChange is one sysctl value the set-up changed.
type sysctlChange struct {
	Key string `json:"key"` // path under /proc/sys, slash-separated
	Old string `json:"old"`
	New string `json:"new"`
}

// record is what a set-up changed in one network namespace.
type record struct {
	Netns   uint64         `json:"netns"`
	Device  string         `json:"device"`
	Added   []string       `json:"added"` // VIP prefixes this tool added
	Sysctls []sysctlChange `json:"sysctls"`
}

// stateFile is keyed by the network namespace, because the file system is
// shared by every namespace of a host (and of a lab).
func stateFile(dir, kind string) (string, uint64, error) {
	if dir == "" {
		dir = DefaultStateDir
	}
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), &st); err != nil {
		return "", 0, fmt.Errorf("identify network namespace: %w", err)
	}
	return filepath.Join(dir, fmt.Sprintf("%s-netns%d.json", kind, st.Ino)), st.Ino, nil
}

func loadRecord(path string) (*record, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	return &r, nil
}

func saveRecord(path string, r *record) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write state %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

func sysctlPath(key string) string { return "/proc/sys/" + key }

func readSysctl(key string) (string, error) {
	b, err := os.ReadFile(sysctlPath(key))
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", strings.ReplaceAll(key, "/", "."), err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writeSysctl(key, v string) error {
	if err := os.WriteFile(sysctlPath(key), []byte(v), 0o644); err != nil {
		return fmt.Errorf("write sysctl %s=%s: %w", strings.ReplaceAll(key, "/", "."), v, err)
	}
	return nil
}

// setSysctl sets key to v, recording the old value in r the first time.
func (r *record) setSysctl(key, v string) error {
	old, err := readSysctl(key)
	if err != nil {
		return err
	}
	recorded := false
	for _, c := range r.Sysctls {
		if c.Key == key {
			recorded = true
		}
	}
	if old == v {
		return nil
	}
	if err := writeSysctl(key, v); err != nil {
		return err
	}
	if !recorded {
		r.Sysctls = append(r.Sysctls, sysctlChange{Key: key, Old: old, New: v})
	}
	return nil
}

// restoreSysctls puts back the recorded values, last change first.
func (r *record) restoreSysctls() error {
	var errs []error
	for i := len(r.Sysctls) - 1; i >= 0; i-- {
		c := r.Sysctls[i]
		if _, err := os.Stat(sysctlPath(c.Key)); errors.Is(err, os.ErrNotExist) {
			continue // its device is gone
		}
		if err := writeSysctl(c.Key, c.Old); err != nil {
			errs = append(errs, err)
		}
	}
	r.Sysctls = nil
	return errors.Join(errs...)
}
