package parity

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gkexec/gkexec/bench"
	"github.com/gkexec/gkexec/hack/gen-manifests/warmpool"
	"github.com/gkexec/gkexec/internal/egress"
	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/autoscale"
)

// runnersWarmPool is the Deployment runner.WarmPoolDeployment builds, its Pods at priorityClass
// ("" for none), in the generic form a manifest declares it in.
func runnersWarmPool(t *testing.T, opts runner.Options, replicas int32, priorityClass string) object {
	t.Helper()
	d, err := warmpool.Deployment(opts, replicas, priorityClass)
	if err != nil {
		t.Fatalf("runner.WarmPoolDeployment: %v", err)
	}
	obj, err := warmpool.Object(d)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// autoscaledWarmPool is the Deployment autoscale.Deployment makes of runner.WarmPoolDeployment
// for policy, its Pods at priorityClass, in generic form.
func autoscaledWarmPool(t *testing.T, opts runner.Options, policy autoscale.Policy, priorityClass string) object {
	t.Helper()
	d, err := warmpool.Deployment(opts, 0, priorityClass)
	if err != nil {
		t.Fatalf("runner.WarmPoolDeployment: %v", err)
	}
	obj, err := warmpool.Object(autoscale.Deployment(d, policy))
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

// TestWarmPoolIsTheRunners: the Deployment that manifests/ and the module install is, field for
// field, what runner.WarmPoolDeployment builds for the runner's default options in the
// installation's namespace, its Pods at the pool's PriorityClass, and only installations with the
// pool have one.
func TestWarmPoolIsTheRunners(t *testing.T) {
	t.Parallel()
	for _, inst := range installations {
		t.Run(inst.name, func(t *testing.T) {
			t.Parallel()
			for source, objs := range map[string]objects{"kustomize": inst.fromKustomize(t), "module": renderModule(t, inst.module)} {
				var deployments []object
				for _, d := range objs.all("Deployment") {
					if d["metadata"].(map[string]any)["name"] != egress.GatewayName {
						deployments = append(deployments, d)
					}
				}
				if !inst.warmPool {
					if len(deployments) != 0 {
						t.Errorf("%s: no warm pool asked for, but it declares %d Deployments", source, len(deployments))
					}
					continue
				}
				want := runnersWarmPool(t, runner.Options{Namespace: inst.namespace}, warmpool.Replicas, bench.PoolPriorityClassName(inst.namespace))
				if inst.autoscaled {
					want = autoscaledWarmPool(t, runner.Options{Namespace: inst.namespace}, warmpool.AutoscalePolicy, bench.PoolPriorityClassName(inst.namespace))
				}
				if len(deployments) != 1 {
					t.Fatalf("%s: want exactly the warm pool's Deployment, found %d", source, len(deployments))
				}
				if diff := diffObjects(deployments[0], want); len(diff) > 0 {
					t.Errorf("%s: the warm pool differs from runner.WarmPoolDeployment(runner.Options{Namespace: %q}, %d) at PriorityClass %s:\n  %s",
						source, inst.namespace, warmpool.Replicas, bench.PoolPriorityClassName(inst.namespace), strings.Join(diff, "\n  "))
				}
			}
		})
	}
}

// TestModuleWarmPoolFollowsItsSettings: every warm_pool setting of the module lands where the
// runner's matching option does, so a runner with those options claims the pool's Pods.
func TestModuleWarmPoolFollowsItsSettings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		module        map[string]any
		options       runner.Options
		replicas      int32
		priorityClass string
	}{
		{
			name: "every setting changed, another namespace",
			module: map[string]any{
				"namespace": "team-b",
				"quota": map[string]any{
					"jobs": 10, "pods": 20, "configmaps": 11,
					"requests_cpu": "20", "requests_memory": "20Gi", "limits_cpu": "40", "limits_memory": "40Gi", "limits_ephemeral_storage": "40Gi",
				},
				"warm_pool": map[string]any{
					"name": "big", "replicas": 5, "image": "registry.example.com/py:3.12",
					"cpu_request": "1", "memory_request": "1Gi", "cpu_limit": "1500m", "memory_limit": "2Gi",
					"ephemeral_storage_limit": "2Gi", "scratch_size": "256Mi",
				},
			},
			options: runner.Options{
				Namespace: "team-b", WarmPool: "big", Image: "registry.example.com/py:3.12",
				CPURequest: "1", MemoryRequest: "1Gi", CPULimit: "1500m", MemoryLimit: "2Gi",
				EphemeralStorageLimit: "2Gi", ScratchSizeLimit: "256Mi",
			},
			replicas:      5,
			priorityClass: "gkexec-warm-pool-team-b",
		},
		{
			name:          "an empty pool",
			module:        map[string]any{"warm_pool": map[string]any{"replicas": 0}},
			options:       runner.Options{Namespace: "gkexec"},
			replicas:      0,
			priorityClass: "gkexec-warm-pool-gkexec",
		},
		{
			name:          "an existing PriorityClass",
			module:        map[string]any{"warm_pool": map[string]any{}, "warm_pool_priority_class": map[string]any{"name": "platform-low", "create": false}},
			options:       runner.Options{Namespace: "gkexec"},
			replicas:      2,
			priorityClass: "platform-low",
		},
		{
			name:     "no PriorityClass: exactly the runner's Deployment",
			module:   map[string]any{"warm_pool": map[string]any{}, "warm_pool_priority_class": nil},
			options:  runner.Options{Namespace: "gkexec"},
			replicas: 2,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := renderModule(t, c.module).all("Deployment")
			if len(got) != 1 {
				t.Fatalf("module declares %d Deployments, want the warm pool's", len(got))
			}
			if diff := diffObjects(got[0], runnersWarmPool(t, c.options, c.replicas, c.priorityClass)); len(diff) > 0 {
				t.Errorf("the module's warm pool differs from runner.WarmPoolDeployment(%+v, %d) at PriorityClass %q:\n  %s", c.options, c.replicas, c.priorityClass, strings.Join(diff, "\n  "))
			}
		})
	}
}

// TestPoolRunsBelowExecutions: with the pool, manifests/ and the module declare the PriorityClass
// that gkexec bench gives the pool it makes (bench.PoolPriorityClass), so the benchmark measures
// what is installed: named after the namespace, below executions' sandboxes (which carry no
// priorityClassName: the default, 0), never preempting, not the cluster's default; and nothing of
// it without the pool.
func TestPoolRunsBelowExecutions(t *testing.T) {
	t.Parallel()
	for _, inst := range installations {
		t.Run(inst.name, func(t *testing.T) {
			t.Parallel()
			for source, objs := range map[string]objects{"kustomize": inst.fromKustomize(t), "module": renderModule(t, inst.module)} {
				classes := objs.all("PriorityClass")
				if !inst.warmPool {
					if len(classes) != 0 {
						t.Errorf("%s: no warm pool asked for, but it declares %d PriorityClasses", source, len(classes))
					}
					continue
				}
				want, err := warmpool.Object(bench.PoolPriorityClass(inst.namespace))
				if err != nil {
					t.Fatal(err)
				}
				if len(classes) != 1 {
					t.Fatalf("%s: want the pool's PriorityClass, found %d", source, len(classes))
				}
				if diff := diffObjects(classes[0], want); len(diff) > 0 {
					t.Errorf("%s: the pool's PriorityClass differs from bench.PoolPriorityClass(%q):\n  %s", source, inst.namespace, strings.Join(diff, "\n  "))
				}
				if v, _ := classes[0]["value"].(float64); v >= 0 || classes[0]["globalDefault"] == true {
					t.Errorf("%s: the pool's PriorityClass has value %v (global default %v): it must be below the default, 0, that executions' sandboxes get", source, classes[0]["value"], classes[0]["globalDefault"])
				}
			}
		})
	}
	d, err := runner.WarmPoolDeployment(runner.Options{Namespace: "gkexec"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if name := d.Spec.Template.Spec.PriorityClassName; name != "" {
		t.Errorf("runner.WarmPoolDeployment gives its Pods PriorityClass %q: the installation chooses it (warmpool.Deployment), and a cold execution's sandbox must keep the default", name)
	}
}

// TestGeneratedFilesAreFresh: what hack/gen-manifests writes is what the runner builds today, so
// manifests/components/warm-pool/deployment.yaml and priorityclass.yaml and the module's copy of
// the entrypoint cannot fall behind runner/ and bench/.
func TestGeneratedFilesAreFresh(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	files, err := warmpool.Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		onDisk, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Errorf("%v: run `go run ./hack/gen-manifests`", err)
			continue
		}
		if !bytes.Equal(onDisk, files[rel]) {
			t.Errorf("%s is stale (first difference at byte %d): run `go run ./hack/gen-manifests` and commit the result", rel, firstDifference(onDisk, files[rel]))
		}
	}

	// Said twice on purpose: the copy is compared with the runner's source file itself, not only
	// with what the runner embeds.
	runners, err := os.ReadFile(filepath.Join(root, "internal", "wire", "entrypoint.py"))
	if err != nil {
		t.Fatal(err)
	}
	if copied, err := os.ReadFile(filepath.Join(root, warmpool.EntrypointPath)); err != nil || !bytes.Equal(copied, runners) {
		t.Errorf("%s differs from internal/wire/entrypoint.py (%v): run `go run ./hack/gen-manifests`", warmpool.EntrypointPath, err)
	}
}

// TestWarmPoolLeavesRoomForExecutions: with the pool, the quota of manifests/ still fits 50
// executions beside the pool at its largest (replicas plus the rollout's 25% surge), all at the
// pool's resources; the module's warm_pool validation demands the same.
func TestWarmPoolLeavesRoomForExecutions(t *testing.T) {
	t.Parallel()
	for _, overlay := range []string{"manifests/overlays/warm-pool", "manifests/overlays/warm-pool-autoscale"} {
		t.Run(overlay, func(t *testing.T) { testRoomForExecutions(t, overlay) })
	}
}

// testRoomForExecutions checks overlay's quota against its pool at its largest: replicas, or the
// autoscale maximum when it is sized by demand.
func testRoomForExecutions(t *testing.T, overlay string) {
	objs := kustomize(t, overlay, "")
	hard := objs.ofKind(t, "ResourceQuota")["spec"].(map[string]any)["hard"].(map[string]any)
	var pool struct {
		Spec struct {
			Replicas int64
			Template struct {
				Spec struct {
					Containers []struct {
						Resources struct{ Requests, Limits map[string]string }
					}
				}
			}
		}
	}
	deployment := objs.ofKind(t, "Deployment")
	convert(t, deployment, &pool)
	largest := pool.Spec.Replicas
	if policy, err := autoscale.PolicyOf(stringMap(deployment["metadata"].(map[string]any)["annotations"])); err == nil {
		largest = int64(policy.Max)
	}
	res := pool.Spec.Template.Spec.Containers[0].Resources
	const executions = 50
	pods := executions + largest + int64(math.Ceil(float64(largest)/4))
	perPod := map[string]string{
		"pods":                     "1",
		"requests.cpu":             res.Requests["cpu"],
		"requests.memory":          res.Requests["memory"],
		"limits.cpu":               res.Limits["cpu"],
		"limits.memory":            res.Limits["memory"],
		"limits.ephemeral-storage": res.Limits["ephemeral-storage"],
	}
	for name, each := range perPod {
		need := resource.MustParse(each)
		need.Mul(pods)
		if got, _ := hard[name].(string); compareQuantities(t, got, need.String()) < 0 {
			t.Errorf("ResourceQuota %s = %s, below %d executions and %d pool Pods at the pool's %s each (%s)", name, got, executions, pods-executions, each, need.String())
		}
	}
}

func (objs objects) all(kind string) []object {
	var found []object
	for _, k := range objs.keys() {
		if objs[k]["kind"] == kind {
			found = append(found, objs[k])
		}
	}
	return found
}

// diffObjects lists the paths at which two generic objects differ, with both values, shortened:
// a Deployment that embeds the entrypoint is too long to print whole.
func diffObjects(got, want any) []string {
	var diff []string
	var walk func(path string, a, b any)
	walk = func(path string, a, b any) {
		switch a := a.(type) {
		case map[string]any:
			if b, ok := b.(map[string]any); ok {
				for _, k := range slices.Sorted(maps.Keys(mergeKeys(a, b))) {
					walk(path+"."+k, a[k], b[k])
				}
				return
			}
		case []any:
			if b, ok := b.([]any); ok && len(a) == len(b) {
				for i := range a {
					walk(fmt.Sprintf("%s[%d]", path, i), a[i], b[i])
				}
				return
			}
		}
		if as, ok := a.(string); ok {
			if bs, ok := b.(string); ok && as != bs && len(as)+len(bs) > 240 {
				i := firstDifference([]byte(as), []byte(bs))
				from := max(0, i-40)
				diff = append(diff, fmt.Sprintf("%s: long strings differ at byte %d: got ...%q..., want ...%q...", path, i, as[from:min(len(as), i+40)], bs[from:min(len(bs), i+40)]))
				return
			}
		}
		if !reflect.DeepEqual(a, b) {
			diff = append(diff, fmt.Sprintf("%s: got %s, want %s", path, short(a), short(b)))
		}
	}
	walk("", got, want)
	return diff
}

func mergeKeys(a, b map[string]any) map[string]bool {
	keys := make(map[string]bool, len(a)+len(b))
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}

func short(v any) string {
	if v == nil {
		return "(absent)"
	}
	s := fmt.Sprintf("%#v", v)
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

func firstDifference(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func stringMap(v any) map[string]string {
	out := map[string]string{}
	m, _ := v.(map[string]any)
	for k, x := range m {
		out[k], _ = x.(string)
	}
	return out
}
