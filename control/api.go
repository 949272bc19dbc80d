package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/config/ipvsadm"
	"github.com/ulvs/ulvs/healthcheck"
)

// The control API, HTTP with JSON bodies on a unix socket (root-only by
// default, mode 0600). Endpoints:
//
//	GET  /v1/snapshot[?conns=1]  the table with counters and rates (ipvsadm.Snapshot);
//	                             conns=1 adds the connection table
//	POST /v1/command             {"argv": [...], "stdin": "..."}: one ipvsadm command
//	                             that changes the table (-A -E -D -C -a -e -d -Z --set -R)
//	GET  /v1/config              the running table as TOML
//	PUT  /v1/config              a whole TOML file: applied as a diff, like a reload
//	POST /v1/reload              re-read the daemon's configuration file
//	GET  /v1/status              daemon facts: drops by reason, engine counters, role
//
// Errors answer 4xx/5xx with {"error": "...", "code": N}: the message and
// exit status ipvsadm would have used where it has one.
type apiError struct {
	Error string `json:"error"`
	Code  int    `json:"code"`
}

// CommandRequest is the body of POST /v1/command.
type CommandRequest struct {
	Argv  []string `json:"argv"`
	Stdin string   `json:"stdin,omitempty"`
}

// ChangeReply is the body of a successful change.
type ChangeReply struct {
	Ops     []string `json:"ops"`
	Restart []string `json:"restart,omitempty"`
}

// StatusFunc returns the daemon facts served on /v1/status.
type StatusFunc func() any

// Handler returns the API's HTTP handler.
func (c *Control) Handler(status StatusFunc) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/snapshot", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Snapshot(r.URL.Query().Get("conns") == "1"))
	})
	mux.HandleFunc("POST /v1/command", func(w http.ResponseWriter, r *http.Request) {
		var req CommandRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&req); err != nil {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("bad request body: %w", err))
			return
		}
		if err := c.Command(req.Argv, []byte(req.Stdin)); err != nil {
			writeErr(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, ChangeReply{})
	})
	mux.HandleFunc("GET /v1/config", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/toml")
		_, _ = w.Write(config.Marshal(c.Config()))
	})
	mux.HandleFunc("PUT /v1/config", func(w http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		if err != nil {
			writeErr(w, http.StatusBadRequest, err)
			return
		}
		next, err := config.Parse(data, "request")
		if err != nil {
			writeErr(w, http.StatusUnprocessableEntity, err)
			return
		}
		ch, err := c.Apply(next)
		if err != nil {
			writeErr(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, changeReply(ch))
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		ch, err := c.Reload()
		if err != nil {
			writeErr(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, http.StatusOK, changeReply(ch))
	})
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		st := c.HealthStatus()
		if st == nil {
			st = []healthcheck.Status{}
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		if status == nil {
			writeJSON(w, http.StatusOK, struct{}{})
			return
		}
		writeJSON(w, http.StatusOK, status())
	})
	return mux
}

func changeReply(ch config.Changes) ChangeReply {
	r := ChangeReply{Restart: ch.Restart, Ops: []string{}}
	for _, op := range ch.Ops {
		r.Ops = append(r.Ops, op.String())
	}
	return r
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, status int, err error) {
	code := ipvsadm.ExitCode(err)
	writeJSON(w, status, apiError{Error: err.Error(), Code: code})
}

// Listen opens the control socket at path, replacing a stale one, with
// mode 0600 (root only) and its directory created 0755.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if conn, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		conn.Close()
		return nil, fmt.Errorf("control socket %s: another ulvsd is listening on it", path)
	}
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Serve serves the API on l until ctx ends.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
