package control

// Connection sync daemons over the control socket (issue 7): what
// `ulvsadm --start-daemon master|backup`, `--stop-daemon master|backup` and
// `-L --daemon` use. ulvsd registers its daemons with WithDaemons.
//
//	GET  /v1/daemon              the running sync daemons ([]ipvsadm.DaemonState)
//	POST /v1/daemon/start        ipvsadm.Daemon: start a master or backup daemon
//	POST /v1/daemon/stop         {"state": "master"|"backup"}: stop it

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/ulvs/ulvs/config/ipvsadm"
)

// SyncDaemons runs the connection sync daemons; ulvsd implements it.
type SyncDaemons interface {
	StartDaemon(d ipvsadm.Daemon) error
	StopDaemon(state string) error
	Daemons() []ipvsadm.DaemonState
}

// ErrDaemonState is returned for a state other than master or backup.
var ErrDaemonState = errors.New("sync daemon state must be master or backup")

type stopRequest struct {
	State string `json:"state"`
}

// WithDaemons serves the sync daemon endpoints from sd and everything
// else from h (Control.Handler).
func WithDaemons(h http.Handler, sd SyncDaemons) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("GET /v1/daemon", func(w http.ResponseWriter, r *http.Request) {
		ds := sd.Daemons()
		if ds == nil {
			ds = []ipvsadm.DaemonState{}
		}
		writeJSON(w, http.StatusOK, ds)
	})
	mux.HandleFunc("POST /v1/daemon/start", func(w http.ResponseWriter, r *http.Request) {
		var d ipvsadm.Daemon
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&d); err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("bad request body: %w", err))
			return
		}
		if d.State != "master" && d.State != "backup" {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("%w (got %q)", ErrDaemonState, d.State))
			return
		}
		if err := sd.StartDaemon(d); err != nil {
			writeErr(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("POST /v1/daemon/stop", func(w http.ResponseWriter, r *http.Request) {
		var req stopRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("bad request body: %w", err))
			return
		}
		if req.State != "master" && req.State != "backup" {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("%w (got %q)", ErrDaemonState, req.State))
			return
		}
		if err := sd.StopDaemon(req.State); err != nil {
			writeErr(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	})
	return mux
}

// StartDaemon starts a sync daemon (ulvsadm --start-daemon).
func (c *Client) StartDaemon(d ipvsadm.Daemon) error {
	body, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return c.do("POST", "/v1/daemon/start", bytes.NewReader(body), nil)
}

// StopDaemon stops the master or backup sync daemon (ulvsadm --stop-daemon).
func (c *Client) StopDaemon(state string) error {
	body, _ := json.Marshal(stopRequest{State: state})
	return c.do("POST", "/v1/daemon/stop", bytes.NewReader(body), nil)
}

// Daemons lists the running sync daemons (ulvsadm -L --daemon).
func (c *Client) Daemons() ([]ipvsadm.DaemonState, error) {
	var ds []ipvsadm.DaemonState
	err := c.do("GET", "/v1/daemon", nil, &ds)
	return ds, err
}
