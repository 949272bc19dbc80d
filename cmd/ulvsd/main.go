// Command ulvsd is the ulvs director daemon: it forwards the virtual
// services' traffic in userspace and serves the control socket. It runs in
// the foreground, as systemd expects; SIGTERM or SIGINT stop it cleanly and
// SIGHUP re-reads the configuration file (only the differences are applied).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/ulvs/ulvs/config"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("ulvsd", flag.ContinueOnError)
	path := fs.String("config", "/etc/ulvs/ulvsd.toml", "configuration `file` (TOML)")
	check := fs.Bool("check", false, "check the configuration file and exit")
	human := fs.Bool("console-log", false, "human-readable logs instead of JSON lines")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (pprof) of the whole run to `file`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ulvsd: %v\n", err)
		return 1
	}
	if *check {
		fmt.Printf("%s: ok (%d virtual services)\n", *path, len(cfg.VirtualServers))
		return 0
	}
	log := newLogger(cfg.Director.LogLevel, *human)
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			log.Error().Err(err).Msg("cpu profile")
			return 1
		}
		defer stop()
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	d, err := start(ctx, cfg, *path, log)
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				log.Error().Err(err).Msg("stopped")
				return 1
			}
			return 0
		case s := <-sigs:
			if s == syscall.SIGHUP {
				d.reload()
				continue
			}
			log.Info().Str("signal", s.String()).Msg("stopping")
			cancel()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					log.Error().Err(err).Msg("stopped")
					return 1
				}
			case <-time.After(10 * time.Second):
				log.Error().Msg("did not stop within 10 s")
				return 1
			}
			log.Info().Msg("stopped")
			return 0
		}
	}
}

func newLogger(level string, human bool) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	var log zerolog.Logger
	if human {
		log = zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly})
	} else {
		log = zerolog.New(os.Stderr)
	}
	return log.Level(lvl).With().Timestamp().Str("component", "ulvsd").Logger()
}

// startCPUProfile profiles the process until the returned function runs.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
