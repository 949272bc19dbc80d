package e2e

import (
	"net/netip"
	"testing"
)

func (e *env) testCapture(t *testing.T, web4, web6, echo4 netip.AddrPort)  { t.Skip("todo") }
func (e *env) testMalformed(t *testing.T, web4, web6, name4 netip.AddrPort) { t.Skip("todo") }
