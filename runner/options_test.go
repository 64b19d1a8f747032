package runner

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gkexec/gkexec/runner/internal/podspec"
)

func defaults(t *testing.T, o Options) *Options {
	t.Helper()
	o.setDefaults()
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	return &o
}

func TestDefaultsMatchADKGkeCodeExecutor(t *testing.T) {
	t.Parallel()
	o := defaults(t, Options{})
	got := map[string]string{
		"namespace": o.Namespace, "image": o.Image, "timeout": o.Timeout.String(),
		"cpu_requested": o.CPURequest, "mem_requested": o.MemoryRequest, "cpu_limit": o.CPULimit, "mem_limit": o.MemoryLimit,
		"runtime class": o.RuntimeClassName,
	}
	want := map[string]string{
		"namespace": "default", "image": "python:3.11-slim", "timeout": "5m0s",
		"cpu_requested": "200m", "mem_requested": "256Mi", "cpu_limit": "500m", "mem_limit": "512Mi",
		"runtime class": "gvisor",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
}

func TestValidateNamesEveryBadField(t *testing.T) {
	t.Parallel()
	o := Options{
		Namespace: "Bad_NS", CPURequest: "2", CPULimit: "1", MemoryLimit: "lots", Timeout: -time.Second,
		ImagePullPolicy: "Sometimes", ScratchSizeLimit: "-1Mi", RunAsUser: -5,
		Labels: map[string]string{LabelManagedBy: "me"}, MaxOutputBytes: 8 << 20,
	}
	o.setDefaults()
	err := o.validate()
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("error = %v, want ErrInvalidOptions", err)
	}
	for _, field := range []string{"Namespace", "CPURequest", "MemoryLimit", "Timeout", "ImagePullPolicy",
		"ScratchSizeLimit", "RunAsUser", "reserved by gkexec", "MaxOutputBytes"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s:\n%v", field, err)
		}
	}
}

// TestWarmPoolDeploymentIsWhatTheRunnerClaims: the pool built from some options holds Pods a
// runner with the same options claims, and one with other options does not.
func TestWarmPoolDeploymentIsWhatTheRunnerClaims(t *testing.T) {
	t.Parallel()
	opts := Options{Namespace: "sb", Labels: map[string]string{"team": "ai"}, WarmPool: "small", NoRuntimeClass: true}
	d, err := WarmPoolDeployment(opts, 3)
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != "Deployment" || d.Name != "gkexec-pool-small" || d.Namespace != "sb" || *d.Spec.Replicas != 3 {
		t.Errorf("%s %s/%s replicas %d", d.Kind, d.Namespace, d.Name, *d.Spec.Replicas)
	}
	same, other := defaults(t, opts).shape(), defaults(t, Options{Namespace: "sb", Image: "python:3.12"}).shape()
	if podspec.Fingerprint(d.Spec.Template.Spec) != podspec.Fingerprint(podspec.Pod(&same, nil)) {
		t.Error("a runner with the pool's options would not claim its pods")
	}
	if podspec.Fingerprint(d.Spec.Template.Spec) == podspec.Fingerprint(podspec.Pod(&other, nil)) {
		t.Error("a runner with other options would claim the pool's pods")
	}
	if d.Spec.Template.Spec.RuntimeClassName != nil {
		t.Error("NoRuntimeClass: the pool's pods name a RuntimeClass")
	}
	if _, err := WarmPoolDeployment(Options{WarmPool: "Not A Label!"}, 1); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("bad pool name: %v, want ErrInvalidOptions", err)
	}
	if _, err := WarmPoolDeployment(Options{}, -1); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("negative replicas: %v, want ErrInvalidOptions", err)
	}
}
