package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gkexec/gkexec/gateway"
	"github.com/gkexec/gkexec/runner/internal/gatewayclient"
)

// Egress is what the namespace's egress gateway allowed and refused for one execution (its
// sandbox's requests while it ran; in a session, since the session's previous execution read
// them). Result.Egress is nil when the namespace has no gateway.
type Egress struct {
	// Allowed and Denied destinations, by host and port (and Reason for a refusal), with the
	// number of decisions: one per plain HTTP request, one per HTTPS tunnel, one per refused
	// request inside an intercepted tunnel.
	Allowed []EgressDestination `json:"allowed"`
	Denied  []EgressDestination `json:"denied"`
	// Error says why the gateway's counts could not be read, when they could not; the
	// execution's result stands.
	Error string `json:"error,omitempty"`
}

// EgressDestination is one destination the gateway judged: gateway.Destination, whose Reason is
// one of the gateway.Reason values (not-allowed, narrowed, raw-ip, private-address, ...).
type EgressDestination = gateway.Destination

// egressReadTimeout bounds asking the gateway: a port-forward and one small answer per replica.
const egressReadTimeout = 10 * time.Second

// readEgress asks the gateway what it did for the execution's sandbox; since, if not nil, is what
// it had done before (a session's earlier executions), and the stats read are returned for the
// next. Nothing is asked when the runner cannot reach the gateway's admin API (no REST config).
func (r *Runner) readEgress(ctx context.Context, x *execution, since *gateway.Stats) *gateway.Stats {
	if r.gateway == nil || x.Pod == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), egressReadTimeout)
	defer cancel()
	stats, err := r.gateway.Stats(ctx, x.Pod)
	switch {
	case errors.Is(err, gatewayclient.ErrNoGateway):
		return nil
	case err != nil:
		x.Log.Warn("cannot read the egress gateway's counts", "pod", x.Pod, "error", err)
		x.egress = &Egress{Allowed: []EgressDestination{}, Denied: []EgressDestination{},
			Error: fmt.Sprintf("reading the egress gateway's counts for pod %s/%s: %v", r.opts.Namespace, x.Pod, err)}
		return nil
	}
	seen := stats
	if since != nil {
		stats = stats.Since(*since)
	}
	x.egress = &Egress{Allowed: stats.Allowed, Denied: stats.Denied}
	return &seen
}
