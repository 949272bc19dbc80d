package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/healthcheck"
)

// DefaultSocket is where ulvsd listens unless configured otherwise.
const DefaultSocket = "/run/ulvs/ulvsd.sock"

// Client talks to ulvsd's control socket.
type Client struct {
	http *http.Client
}

// ErrNoDaemon is returned when nothing listens on the socket.
var ErrNoDaemon = errors.New("cannot reach ulvsd")

// RemoteError is an error reported by the daemon, with the exit status
// ipvsadm would have used.
type RemoteError struct {
	Msg  string
	Code int
}

func (e *RemoteError) Error() string { return e.Msg }

// ExitCode returns the status ulvsadm exits with.
func (e *RemoteError) ExitCode() int { return e.Code }

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	if path == "" {
		path = DefaultSocket
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &Client{http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (c *Client) do(method, path string, body io.Reader, out any) error {
	req, err := http.NewRequest(method, "http://ulvsd"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoDaemon, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var ae apiError
		if json.Unmarshal(data, &ae) == nil && ae.Error != "" {
			return &RemoteError{Msg: ae.Error, Code: ae.Code}
		}
		return &RemoteError{Msg: fmt.Sprintf("ulvsd: %s", resp.Status), Code: 1}
	}
	if out == nil {
		return nil
	}
	if b, ok := out.(*[]byte); ok {
		*b = data
		return nil
	}
	return json.Unmarshal(data, out)
}

// Snapshot fetches the table with counters (and connections with conns).
func (c *Client) Snapshot(conns bool) (*ipvsadm.Snapshot, error) {
	var s ipvsadm.Snapshot
	path := "/v1/snapshot"
	if conns {
		path += "?conns=1"
	}
	if err := c.do("GET", path, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Health fetches every health check's state (counts, last result,
// durations), for monitors and metrics.
func (c *Client) Health() ([]healthcheck.Status, error) {
	var st []healthcheck.Status
	err := c.do("GET", "/v1/health", nil, &st)
	return st, err
}

// Command runs one table-changing ipvsadm command in the daemon.
func (c *Client) Command(argv []string, stdin []byte) error {
	body, err := json.Marshal(CommandRequest{Argv: argv, Stdin: string(stdin)})
	if err != nil {
		return err
	}
	return c.do("POST", "/v1/command", bytes.NewReader(body), nil)
}

// Config fetches the running table as TOML.
func (c *Client) Config() ([]byte, error) {
	var b []byte
	err := c.do("GET", "/v1/config", nil, &b)
	return b, err
}

// PutConfig applies a whole TOML configuration.
func (c *Client) PutConfig(toml []byte) (ChangeReply, error) {
	var r ChangeReply
	err := c.do("PUT", "/v1/config", bytes.NewReader(toml), &r)
	return r, err
}

// Reload asks the daemon to re-read its configuration file.
func (c *Client) Reload() (ChangeReply, error) {
	var r ChangeReply
	err := c.do("POST", "/v1/reload", nil, &r)
	return r, err
}

// Status fetches the daemon facts into out.
func (c *Client) Status(out any) error { return c.do("GET", "/v1/status", nil, out) }
