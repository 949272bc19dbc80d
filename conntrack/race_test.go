//go:build race

package conntrack

// raceEnabled shrinks the largest test loads under the race detector, which
// slows atomics tenfold; the same assertions still run.
const raceEnabled = true
