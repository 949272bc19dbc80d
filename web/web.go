// Package web is ulvs's browser monitor: an HTTPS-only site with logins
// (bcrypt hashes from the configuration, an admin and a viewer role,
// sessions, CSRF tokens, a lockout on failed logins, an audit log line for
// every login and change) that shows the virtual services and real
// servers live, the failover state, the health-check log and the
// connection table, and lets an admin change weights and real servers
// through the control plane's own validation. It also serves Prometheus
// metrics on /metrics. Its pages and assets are embedded in the binary.
package web

import (
	"context"
	"crypto/tls"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/config/ipvsadm"
)

//go:embed assets
var assets embed.FS

// Controller is what the monitor reads and changes: *control.Control.
type Controller interface {
	// Snapshot returns the table with counters and rates (and the
	// connection table with conns).
	Snapshot(conns bool) *ipvsadm.Snapshot
	// Command runs one ipvsadm command, validated as ulvsadm's are.
	Command(argv []string, stdin []byte) error
}

// FailoverStatus is the failover state the monitor shows and exports.
type FailoverStatus struct {
	Role        string    `json:"role"`                  // "master", "backup", "fault", ...
	Peer        string    `json:"peer,omitempty"`        // the other director, as configured
	PeerState   string    `json:"peer_state,omitempty"`  // what the peer last said it is
	Since       time.Time `json:"since,omitzero"`        // last transition
	Reason      string    `json:"reason,omitempty"`      // why it happened
	Transitions uint64    `json:"transitions,omitempty"` // count since start
}

// HealthEvent is one health-check transition for the health-check log.
type HealthEvent struct {
	Time       time.Time `json:"time"`
	Service    string    `json:"service"`     // "tcp 10.0.0.1:80"
	RealServer string    `json:"real_server"` // "10.0.1.1:80"
	From       string    `json:"from"`        // previous state ("" = not checked)
	To         string    `json:"to"`          // new state ("up", "down", ...)
	Reason     string    `json:"reason,omitempty"`
}

// Options configure a Monitor.
type Options struct {
	Web     config.Web
	Control Controller
	// Status returns the daemon facts (control.StatusFunc: drops by
	// reason, engine counters, standby); nil = none.
	Status func() any
	// Failover returns the failover state; nil (or a nil result) shows
	// "failover not configured".
	Failover func() *FailoverStatus
	// HealthFeed says that the daemon calls Event for every health
	// transition; without it the monitor records the changes of
	// ipvsadm.Server.Health it sees between two samples itself.
	HealthFeed bool
	// SampleEvery is the sampling period of the charts (default 2 s);
	// History the number of samples kept (default 150: 5 minutes).
	SampleEvery time.Duration
	History     int
	// Events bounds the health-check log (default 1000).
	Events int
	Log    zerolog.Logger
	// Now is the clock (tests); nil = time.Now.
	Now func() time.Time
}

// Monitor is the web monitor.
type Monitor struct {
	o    Options
	auth *auth
	cert tls.Certificate
	log  zerolog.Logger
	now  func() time.Time
	mux  *http.ServeMux

	mu       sync.Mutex
	hist     []sample
	events   []HealthEvent // ring, oldest first
	lastHC   map[string]string
	draining map[string]bool // server ids being drained
	nEvents  uint64
	failFn   func() *FailoverStatus
}

// Errors of New and Run.
var ErrNoUsers = errors.New("web: no users configured")

// New returns a monitor. It loads (or makes, on first start) the TLS
// certificate; see LoadCertificate.
func New(o Options) (*Monitor, error) {
	if len(o.Web.Users) == 0 {
		return nil, ErrNoUsers
	}
	if o.Control == nil {
		return nil, errors.New("web: no control plane")
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = 2 * time.Second
	}
	if o.History <= 0 {
		o.History = 150
	}
	if o.Events <= 0 {
		o.Events = 1000
	}
	if o.Web.SessionTimeout <= 0 {
		o.Web.SessionTimeout = config.DefaultWebSessionTimeout
	}
	if o.Web.StateDir == "" {
		o.Web.StateDir = config.DefaultWebStateDir
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	cert, gen, err := LoadCertificate(o.Web.CertFile, o.Web.KeyFile, o.Web.StateDir, o.Web.Listen)
	if err != nil {
		return nil, err
	}
	m := &Monitor{o: o, cert: cert, log: o.Log.With().Str("component", "web").Logger(), now: now,
		auth: newAuth(o.Web.Users, o.Web.SessionTimeout, now), lastHC: map[string]string{}, draining: map[string]bool{},
		failFn: o.Failover}
	if o.Web.CertFile == "" {
		ev := m.log.Info()
		if gen {
			ev = m.log.Warn()
		}
		ev.Str("dir", o.Web.StateDir).Bool("generated", gen).Str("sha256", Fingerprint(cert)).
			Msg("self-signed certificate of the monitor; compare the fingerprint in the browser")
	}
	m.routes()
	return m, nil
}

// Certificate returns the certificate the monitor serves.
func (m *Monitor) Certificate() tls.Certificate { return m.cert }

// TLSConfig returns the server's TLS configuration (TLS 1.2+, HTTP/1.1).
func (m *Monitor) TLSConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{m.cert}, MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"}}
}

// Handler returns the monitor's HTTP handler. It must be served over TLS
// (Serve does); a request without TLS is answered with a redirect.
func (m *Monitor) Handler() http.Handler { return m.mux }

// Event records a health-check transition in the log the monitor shows.
func (m *Monitor) Event(e HealthEvent) {
	if e.Time.IsZero() {
		e.Time = m.now()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addEventLocked(e)
}

func (m *Monitor) addEventLocked(e HealthEvent) {
	if e.From == "" {
		e.From = NotChecked
	}
	if e.To == "" {
		e.To = NotChecked
	}
	if len(m.events) >= m.o.Events {
		copy(m.events, m.events[1:])
		m.events = m.events[:len(m.events)-1]
	}
	m.events = append(m.events, e)
	m.nEvents++
}

// Start opens the configured listeners (web.listen, and
// web.metrics_listen when set) and serves in the background until ctx
// ends. A listener that cannot be opened is an error at once. done is
// closed when everything has stopped.
func (m *Monitor) Start(ctx context.Context) (done <-chan struct{}, err error) {
	l, err := net.Listen("tcp", m.o.Web.Listen)
	if err != nil {
		return nil, fmt.Errorf("web.listen: %w", err)
	}
	var ml net.Listener
	if m.o.Web.MetricsListen != "" {
		if ml, err = net.Listen("tcp", m.o.Web.MetricsListen); err != nil {
			l.Close()
			return nil, fmt.Errorf("web.metrics_listen: %w", err)
		}
	}
	m.log.Info().Str("listen", l.Addr().String()).Str("metrics_listen", m.o.Web.MetricsListen).Msg("monitor started")
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		if err := m.run(ctx, l, ml); err != nil {
			m.log.Error().Err(err).Msg("monitor stopped")
		}
	}()
	return ch, nil
}

func (m *Monitor) run(ctx context.Context, l, ml net.Listener) error {
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(2)
	go func() { defer wg.Done(); errc <- m.Serve(ctx, l) }()
	go func() { defer wg.Done(); m.Sample(ctx) }()
	if ml != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- m.ServeMetrics(ctx, ml) }()
	}
	wg.Wait()
	close(errc)
	return errors.Join(<-errc, <-errc)
}

// Serve serves the monitor over TLS on l until ctx ends; plain HTTP on l
// gets a redirect to https://.
func (m *Monitor) Serve(ctx context.Context, l net.Listener) error {
	tl := newTLSOrPlain(l, m.TLSConfig())
	return serve(ctx, tl, m.mux, m.log)
}

// ServeMetrics serves only /metrics, plain HTTP, on l until ctx ends
// (web.metrics_listen, loopback).
func (m *Monitor) ServeMetrics(ctx context.Context, l net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", m.metrics)
	return serve(ctx, l, mux, m.log)
}

func serve(ctx context.Context, l net.Listener, h http.Handler, log zerolog.Logger) error {
	// The server's own errors (TLS handshakes that fail, for example) are
	// caused by clients: debug level only.
	errLog := stdlog.New(debugWriter{log}, "", 0)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: errLog}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		l.Close()
	}()
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

type debugWriter struct{ log zerolog.Logger }

func (d debugWriter) Write(p []byte) (int, error) {
	d.log.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// daemonStatus is what the monitor reads of the status function's value
// (through JSON, so that any struct or map with these keys works).
type daemonStatus struct {
	Drops   map[string]uint64 `json:"drops"`
	Engine  map[string]uint64 `json:"engine"`
	Standby bool              `json:"standby"`
}

func (m *Monitor) status() daemonStatus {
	var st daemonStatus
	if m.o.Status == nil {
		return st
	}
	b, err := json.Marshal(m.o.Status())
	if err == nil {
		_ = json.Unmarshal(b, &st)
	}
	return st
}

// SetFailover sets the function that reports the failover state (for a
// daemon whose failover starts after the monitor); nil = not configured.
func (m *Monitor) SetFailover(f func() *FailoverStatus) {
	m.mu.Lock()
	m.failFn = f
	m.mu.Unlock()
}

func (m *Monitor) failover() *FailoverStatus {
	m.mu.Lock()
	f := m.failFn
	m.mu.Unlock()
	if f == nil {
		return nil
	}
	return f()
}
