// Package healthcheck runs the health checks of ulvs's real servers and turns
// their results into up/down and weight events for the service table.
//
// It is ulvs's nanny: one [Manager] runs every configured check (tcp,
// send_expect, http, https, tls, udp, dns, exec, feedback, none), applies the
// rise/fall state machine, and reports each transition once to a [Sink] that
// the daemon's service table implements. The package knows nothing about the
// data path: the sink decides what "down" does to the scheduler's pool,
// following the check's on_failure action (remove or quiesce).
//
// # Scheduling
//
// A single scheduling goroutine owns all state. It keeps a timer heap of the
// checks' next due times, read from an injectable [Clock], and starts each due
// probe in its own goroutine while fewer than the in-flight bound (default
// 256) are running; further due probes wait in a FIFO queue. A check never
// has more than one probe in flight, and every probe runs under a context
// with the check's timeout, so a slow or hanging server delays only its own
// check. First runs are spread uniformly over one interval (jitter) so that
// ten thousand checks configured at once do not fire together. Sink calls are
// made from a separate goroutine, in order, so a slow sink never stalls the
// checks, and [Manager.Update] never waits for the sink.
//
// # State machine
//
// Each check starts in its initial_state (default "up", as keepalived's
// checkers do without alpha, and as HAProxy's default init-state): a server
// starting "up" goes down on its first failed probe, and a server starting
// "down" comes up on its first successful probe. Afterwards a server that is
// up goes down after fall consecutive failures, and a server that is down
// comes back after rise consecutive successes; any other result resets the
// opposite counter, so a flapping server does not move. Every transition is
// logged once (one zerolog line) and sent to the sink once, with the precise
// reason ("timeout after 1s", "connection refused", "status 503", ...).
//
// # Weights
//
// exec checks set a dynamic weight (exit code 2..255 means weight code-2, as
// keepalived's dynamic MISC_CHECK), and feedback checks scale the configured
// weight by the load an agent ([ServeAgent]) reports. Weights go to the sink
// with [Sink.SetWeight]. A real server whose configured (administrative)
// weight is 0 never gets a weight from this package: it stays at 0 whatever
// its checks say, though its health is still tracked and reported.
package healthcheck
