package autoscale

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gkexec/gkexec/runner"
)

func TestPolicyOfTheDeploymentsAnnotations(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		annotations map[string]string
		want        Policy
		err         string // a part of the error; "" for none
	}{
		{name: "none: not autoscaled", annotations: map[string]string{"other": "x"}, err: ErrNotAutoscaled.Error()},
		{name: "only the maximum: the defaults", annotations: map[string]string{AnnotationMax: "6"},
			want: Policy{Min: 1, Max: 6, Spare: DefaultSpare, Cooldown: DefaultCooldown, Refill: DefaultRefill}},
		{name: "all of them, minimum 0", annotations: map[string]string{AnnotationMin: "0", AnnotationMax: "3", AnnotationSpare: "0", AnnotationCooldown: "90s"},
			want: Policy{Min: 0, Max: 3, Spare: 0, Cooldown: 90 * time.Second, Refill: DefaultRefill}},
		{name: "not numbers", annotations: map[string]string{AnnotationMin: "one", AnnotationMax: "3", AnnotationCooldown: "5"},
			err: `gkexec.dev/autoscale-min "one": not a whole number`},
		{name: "a maximum below the minimum", annotations: map[string]string{AnnotationMin: "4", AnnotationMax: "3"}, err: "max 3: must be at least 1 and at least min (4)"},
		{name: "a maximum of 0", annotations: map[string]string{AnnotationMin: "0", AnnotationMax: "0"}, err: "max 0"},
		{name: "negative", annotations: map[string]string{AnnotationMin: "-1", AnnotationMax: "3", AnnotationSpare: "-2", AnnotationCooldown: "-1s"},
			err: "min -1: must not be negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := PolicyOf(c.annotations)
			switch {
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Errorf("PolicyOf: %v, want an error with %q", err, c.err)
			case c.err == "" && (err != nil || got != c.want):
				t.Errorf("PolicyOf = %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
	if _, err := PolicyOf(nil); !errors.Is(err, ErrNotAutoscaled) {
		t.Errorf("PolicyOf(nil): %v, want ErrNotAutoscaled", err)
	}
}

func TestPolicyGoesOntoTheDeploymentAndBack(t *testing.T) {
	t.Parallel()
	p := Policy{Min: 0, Max: 4, Spare: 2, Cooldown: 3 * time.Minute}
	d, err := runner.WarmPoolDeployment(runner.Options{Namespace: "gkexec"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	got := Deployment(d, p)
	if got.Spec.Replicas != nil {
		t.Errorf("an autoscaled pool's Deployment sets replicas %d; the autoscaler owns them", *got.Spec.Replicas)
	}
	if d.Spec.Replicas == nil || d.Annotations[AnnotationMax] != "" {
		t.Error("Deployment changed the Deployment it was given")
	}
	back, err := PolicyOf(got.Annotations)
	if want := p.WithDefaults(); err != nil || back != want {
		t.Errorf("PolicyOf(Deployment(d, p).Annotations) = %+v, %v; want %+v", back, err, want)
	}
}
