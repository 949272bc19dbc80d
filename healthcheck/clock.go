package healthcheck

import "time"

// Clock is the Manager's time source. The real one is the system clock;
// tests inject a fake one that they advance by hand.
type Clock interface {
	Now() time.Time
	// TimerAt returns a timer that fires once the clock reaches t (at once
	// if t is not after Now). An absolute deadline keeps a fake clock
	// race-free: advancing it before the timer is armed still fires it.
	TimerAt(t time.Time) Timer
}

// Timer is a one-shot timer of a Clock.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; the channel is not drained.
	Stop()
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) TimerAt(t time.Time) Timer { return sysTimer{time.NewTimer(time.Until(t))} }

type sysTimer struct{ t *time.Timer }

func (s sysTimer) C() <-chan time.Time { return s.t.C }
func (s sysTimer) Stop()               { s.t.Stop() }
