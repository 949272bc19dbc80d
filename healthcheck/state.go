package healthcheck

import (
	"fmt"
	"time"
)

// health is the rise/fall state machine of one check. It is pure: the
// Manager feeds it results and the time, and reports what it says.
type health struct {
	up      bool
	initial bool // no result since the check was added
	succ    int  // consecutive successes
	fail    int  // consecutive failures
	since   time.Time
	reason  string // why the current state was entered
}

func newHealth(up bool, now time.Time, reason string) health {
	return health{up: up, initial: true, since: now, reason: reason}
}

// observe applies one probe result and reports whether the state changed.
// While initial, one result is enough to leave the initial state (a server
// assumed up goes down on its first failure, one assumed down comes up on
// its first success); afterwards fall consecutive failures take an up server
// down and rise consecutive successes bring a down server back. A result of
// the other kind resets the count, so a flapping server stays where it is.
func (h *health) observe(ok bool, reason string, rise, fall int, now time.Time) bool {
	initial := h.initial
	h.initial = false
	if ok {
		h.succ++
		h.fail = 0
		if !h.up && (initial || h.succ >= rise) {
			h.up, h.since = true, now
			if initial {
				h.reason = "first check passed: " + reason
			} else {
				h.reason = fmt.Sprintf("passed %d consecutive checks: %s", h.succ, reason)
			}
			return true
		}
		return false
	}
	h.fail++
	h.succ = 0
	if h.up && (initial || h.fail >= fall) {
		h.up, h.since, h.reason = false, now, reason
		return true
	}
	return false
}

// consecutive is the count that caused the current state.
func (h *health) consecutive() int {
	if h.up {
		return h.succ
	}
	return h.fail
}
