package healthcheck_test

import (
	"fmt"
	"net/netip"
	"os"
	"sync"

	"github.com/rs/zerolog"

	"github.com/ulvs/ulvs/healthcheck"
)

// table stands for the daemon's service table.
type table struct {
	mu   sync.Mutex
	done chan struct{}
}

func (t *table) SetHealth(tr healthcheck.Transition) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Printf("%s %s up=%v initial=%v reason=%q on_failure=%s\n",
		tr.ID.Service, tr.ID.Server, tr.Up, tr.Initial, tr.Reason, tr.OnFailure)
	close(t.done)
}

func (t *table) SetWeight(id healthcheck.TargetID, w int) {}

func ExampleNewManager() {
	sink := &table{done: make(chan struct{})}
	m := healthcheck.NewManager(zerolog.New(os.Stderr), sink)
	defer m.Close()
	err := m.Update([]healthcheck.Spec{{
		ID:     healthcheck.TargetID{Service: "web", Server: netip.MustParseAddrPort("192.0.2.20:80")},
		Weight: 1,
		Config: healthcheck.Config{Type: healthcheck.TypeNone, OnFailure: healthcheck.ActionQuiesce},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	<-sink.done
	st := m.Status()[0]
	fmt.Println(st.Type, st.Up, st.Reason)
	// Output:
	// web 192.0.2.20:80 up=true initial=true reason="no health check" on_failure=quiesce
	// none true no health check
}
