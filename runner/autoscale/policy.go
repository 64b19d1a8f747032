package autoscale

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
)

// Policy bounds and paces the pool's size.
type Policy struct {
	// Min and Max bound the pool's replicas (idle Pods); Min may be 0: the pool is empty until
	// demand comes, and the first executions run cold.
	Min, Max int32
	// Spare is added to the demand seen: idle Pods beyond what one refill time's peak claimed.
	// It applies only while there is demand; with none, the pool shrinks to Min.
	Spare int32
	// Cooldown is how long the demand must stay lower before the pool shrinks.
	Cooldown time.Duration
	// Refill is the time to refill a Pod assumed until one is measured.
	Refill time.Duration
}

// Defaults for what a Policy leaves zero (Min and Spare may be 0 on purpose: see Annotations).
const (
	DefaultSpare    = 1
	DefaultCooldown = 5 * time.Minute
	DefaultRefill   = 5 * time.Second
)

// The Policy on the pool's Deployment: the installation says that the pool is sized by demand,
// and within what bounds, once for every runner process (autoscale-max is what turns it on).
const (
	AnnotationMin      = "gkexec.dev/autoscale-min"
	AnnotationMax      = "gkexec.dev/autoscale-max"
	AnnotationSpare    = "gkexec.dev/autoscale-spare"
	AnnotationCooldown = "gkexec.dev/autoscale-cooldown"
)

// ErrNotAutoscaled: the pool's Deployment does not ask to be sized by demand.
var ErrNotAutoscaled = errors.New("the warm pool's Deployment has no " + AnnotationMax + " annotation: it is not sized by demand")

// WithDefaults fills in the cooldown and the assumed refill time when they are zero.
func (p Policy) WithDefaults() Policy {
	if p.Cooldown == 0 {
		p.Cooldown = DefaultCooldown
	}
	if p.Refill == 0 {
		p.Refill = DefaultRefill
	}
	return p
}

// Validate says what is wrong with the policy, all at once.
func (p Policy) Validate() error {
	var errs []error
	if p.Min < 0 {
		errs = append(errs, fmt.Errorf("min %d: must not be negative", p.Min))
	}
	if p.Max < 1 || p.Max < p.Min {
		errs = append(errs, fmt.Errorf("max %d: must be at least 1 and at least min (%d)", p.Max, p.Min))
	}
	if p.Spare < 0 {
		errs = append(errs, fmt.Errorf("spare %d: must not be negative", p.Spare))
	}
	if p.Cooldown < 0 || p.Refill < 0 {
		errs = append(errs, fmt.Errorf("cooldown %s, refill %s: must not be negative", p.Cooldown, p.Refill))
	}
	if len(errs) > 0 {
		return fmt.Errorf("warm pool autoscaling: %w", errors.Join(errs...))
	}
	return nil
}

// Annotations are the policy as the Deployment carries it.
func (p Policy) Annotations() map[string]string {
	p = p.WithDefaults()
	return map[string]string{
		AnnotationMin:      strconv.Itoa(int(p.Min)),
		AnnotationMax:      strconv.Itoa(int(p.Max)),
		AnnotationSpare:    strconv.Itoa(int(p.Spare)),
		AnnotationCooldown: p.Cooldown.String(),
	}
}

// PolicyOf reads the policy from a Deployment's annotations: ErrNotAutoscaled without
// AnnotationMax; min defaults to 1, spare to DefaultSpare, cooldown to DefaultCooldown.
func PolicyOf(annotations map[string]string) (Policy, error) {
	if _, ok := annotations[AnnotationMax]; !ok {
		return Policy{}, ErrNotAutoscaled
	}
	var errs []error
	number := func(key string, def int32) int32 {
		v, ok := annotations[key]
		if !ok {
			return def
		}
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: not a whole number", key, v))
		}
		return int32(n)
	}
	p := Policy{Min: number(AnnotationMin, 1), Max: number(AnnotationMax, 0), Spare: number(AnnotationSpare, DefaultSpare)}
	if v, ok := annotations[AnnotationCooldown]; ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: not a duration such as 5m", AnnotationCooldown, v))
		}
		p.Cooldown = d
	}
	if len(errs) > 0 {
		return Policy{}, fmt.Errorf("warm pool autoscaling: %w", errors.Join(errs...))
	}
	p = p.WithDefaults()
	return p, p.Validate()
}

// Deployment is the pool's Deployment sized by p instead of a fixed count: the policy in its
// annotations and no replicas, which the autoscaler owns (an installation that applied a count
// would take it back at every apply). The API server starts it at 1.
func Deployment(d *appsv1.Deployment, p Policy) *appsv1.Deployment {
	d = d.DeepCopy()
	d.Spec.Replicas = nil
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	maps.Copy(d.Annotations, p.Annotations())
	return d
}
