package main

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/ulvs/ulvs/config"
	"github.com/ulvs/ulvs/control"
	"github.com/ulvs/ulvs/web"
)

// startWeb starts the HTTPS monitor and /metrics when [web] is configured
// (nil, nil when not), serving until ctx ends. The returned monitor takes
// the health-check transitions (Monitor.Event) and the failover state
// (Monitor.SetFailover) once the daemon has them.
func startWeb(ctx context.Context, cfg config.Web, ctl *control.Control, status control.StatusFunc, log zerolog.Logger) (*web.Monitor, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	m, err := web.New(web.Options{Web: cfg, Control: ctl, Status: status, Log: log})
	if err != nil {
		return nil, err
	}
	if _, err := m.Start(ctx); err != nil {
		return nil, err
	}
	return m, nil
}
