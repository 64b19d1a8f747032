package parity

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gkexec/gkexec/runner"
)

// installation is one way of installing the sandbox namespace, rendered in both forms.
type installation struct {
	name      string
	manifests string         // kustomize directory
	retarget  string         // namespace an overlay moves manifests to; "" for none
	module    map[string]any // variables of terraform/modules/sandbox-namespace
	namespace string         // where the objects must land
	// agentNamespace is where the agent's ServiceAccount must be; "" for namespace.
	agentNamespace string
	warmPool       bool // whether it installs the warm pool at the component's settings
	// gatewayNamespace is where the egress gateway's FQDN policies must be; "" for none.
	gatewayNamespace string
	// egressGateway is the egress gateway's namespace when it installs one.
	egressGateway string
	autoscaled    bool // whether the pool is sized by demand at warmpool.AutoscalePolicy
}

// serviceAccountNamespace is where the installation puts the agent's ServiceAccount.
func (inst installation) serviceAccountNamespace() string {
	if inst.agentNamespace != "" {
		return inst.agentNamespace
	}
	return inst.namespace
}

// clusterScoped are the kinds the installations declare that live in no namespace.
var clusterScoped = map[string]bool{"Namespace": true, "RuntimeClass": true, "PriorityClass": true, "ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true}

func (inst installation) fromKustomize(t *testing.T) objects {
	return kustomize(t, inst.manifests, inst.retarget)
}

var installations = []installation{
	{
		name:      "GKE: manifests/base = module defaults",
		manifests: "manifests/base",
		module:    map[string]any{},
		namespace: "gkexec",
	},
	{
		name:      "non-GKE: manifests/overlays/non-gke = module with create_runtime_class",
		manifests: "manifests/overlays/non-gke",
		module:    map[string]any{"create_runtime_class": true},
		namespace: "gkexec",
	},
	{
		// The e2e tests retarget the base into a fresh namespace with an overlay's `namespace:`.
		name:      "retargeted: overlay with namespace: = module with namespace",
		manifests: "manifests/base",
		retarget:  "e2e-parity",
		module:    map[string]any{"namespace": "e2e-parity"},
		namespace: "e2e-parity",
	},
	{
		// An agent Pod runs in a namespace of its own: the overlay of manifests/README.md moves the
		// ServiceAccount there, the module's agent_service_account.namespace does the same.
		name:           "agent elsewhere: overlay moving the ServiceAccount = module with agent_service_account.namespace",
		manifests:      "test/parity/testdata/agent-namespace",
		module:         map[string]any{"agent_service_account": map[string]any{"namespace": "agents"}},
		namespace:      "gkexec",
		agentNamespace: "agents",
	},
	{
		name:      "warm pool: manifests/overlays/warm-pool = module with warm_pool = {}",
		manifests: "manifests/overlays/warm-pool",
		module:    map[string]any{"warm_pool": map[string]any{}},
		namespace: "gkexec",
		warmPool:  true,
	},
	{
		name:          "egress gateway: manifests/overlays/egress-gateway = module with egress_gateway = {}",
		manifests:     "manifests/overlays/egress-gateway",
		module:        map[string]any{"egress_gateway": map[string]any{}},
		namespace:     "gkexec",
		egressGateway: "gkexec-egress",
	},
	{
		name:       "warm pool sized by demand: manifests/overlays/warm-pool-autoscale = module with warm_pool = { autoscale = {} }",
		manifests:  "manifests/overlays/warm-pool-autoscale",
		module:     map[string]any{"warm_pool": map[string]any{"autoscale": map[string]any{}}},
		namespace:  "gkexec",
		warmPool:   true,
		autoscaled: true,
	},
	{
		name:      "retargeted warm pool: overlay of overlays/warm-pool with namespace: = module with namespace and warm_pool = {}",
		manifests: "manifests/overlays/warm-pool",
		retarget:  "e2e-parity",
		module:    map[string]any{"namespace": "e2e-parity", "warm_pool": map[string]any{}},
		namespace: "e2e-parity",
		warmPool:  true,
	},
	{
		name:      "GKE FQDN, as shipped: base + components/fqdn-network-policy = module with its placeholders",
		manifests: "test/parity/testdata/fqdn-network-policy-shipped",
		module: map[string]any{
			"fqdn_network_policy": map[string]any{"enabled": true, "cluster_enabled": true, "allowed_domains": []string{"mirror.example", "*.mirror.example"}},
			"cluster_ranges":      map[string]any{"control_plane_cidrs": []string{"192.0.2.1/32"}},
		},
		namespace:        "gkexec",
		gatewayNamespace: "gkexec-egress",
	},
	{
		// The recipe of manifests/README.md: the component's placeholders patched.
		name:      "GKE FQDN, patched: the README's overlay = module with fqdn_network_policy",
		manifests: "test/parity/testdata/fqdn-network-policy",
		module: map[string]any{
			"fqdn_network_policy": map[string]any{"enabled": true, "cluster_enabled": true, "allowed_domains": []string{"pypi.org", "files.pythonhosted.org", "*.example.com"}},
			"cluster_ranges":      map[string]any{"control_plane_cidrs": []string{"172.16.0.2/32"}},
		},
		namespace:        "gkexec",
		gatewayNamespace: "gkexec-egress",
	},
}

// TestManifestsMatchModule: manifests/ and the namespace module declare the same objects, field
// for field (labels, RBAC rules, NetworkPolicy, quota, LimitRange, ServiceAccount, ...).
func TestManifestsMatchModule(t *testing.T) {
	t.Parallel()
	for _, inst := range installations {
		t.Run(inst.name, func(t *testing.T) {
			t.Parallel()
			fromKustomize := inst.fromKustomize(t)
			fromModule := renderModule(t, inst.module)

			if got, want := fromModule.keys(), fromKustomize.keys(); !slices.Equal(got, want) {
				t.Fatalf("different objects:\n  module:    %s\n  kustomize: %s", strings.Join(got, "\n             "), strings.Join(want, "\n             "))
			}
			for _, k := range fromKustomize.keys() {
				if diff := diffObjects(fromModule[k], fromKustomize[k]); len(diff) > 0 {
					t.Errorf("%s differs (got: the module, want: kustomize):\n  %s", k, strings.Join(diff, "\n  "))
				}
			}
			for _, k := range fromKustomize.keys() {
				o := fromKustomize[k]
				meta := o["metadata"].(map[string]any)
				want := inst.namespace
				switch {
				case clusterScoped[fmt.Sprint(o["kind"])]:
					want = ""
				case inst.egressGateway != "" && gatewaySide(t)[k]:
					want = inst.egressGateway
				case o["kind"] == "ServiceAccount":
					want = inst.serviceAccountNamespace()
				case isGatewayPolicy(o):
					want = inst.gatewayNamespace
				}
				if got, _ := meta["namespace"].(string); got != want {
					t.Errorf("%s is in namespace %q, want %q", k, got, want)
				}
			}
		})
	}
}

// TestRoleGrantsExactlyRequiredRules: the Role both install is runner.RequiredRules(), the single
// source of truth, plus runner.WarmPoolRules() with the warm pool and runner.PoolAutoscaleRules()
// with the pool sized by demand, bound to the agent ServiceAccount only, with nothing cluster-wide.
func TestRoleGrantsExactlyRequiredRules(t *testing.T) {
	t.Parallel()
	for _, inst := range installations {
		t.Run(inst.name, func(t *testing.T) {
			t.Parallel()
			want, wantName := normalizeRules(runner.RequiredRules()), "runner.RequiredRules()"
			if inst.warmPool {
				want, wantName = normalizeRules(append(runner.RequiredRules(), runner.WarmPoolRules()...)), "runner.RequiredRules() + runner.WarmPoolRules()"
			}
			if inst.autoscaled {
				want = normalizeRules(append(append(runner.RequiredRules(), runner.WarmPoolRules()...), runner.PoolAutoscaleRules()...))
				wantName = "runner.RequiredRules() + runner.WarmPoolRules() + runner.PoolAutoscaleRules()"
			}
			for source, objs := range map[string]objects{"kustomize": inst.fromKustomize(t), "module": renderModule(t, inst.module)} {
				var role rbacv1.Role
				convert(t, objs.named(t, "Role", "gkexec-runner"), &role)
				if got := normalizeRules(role.Rules); !reflect.DeepEqual(got, want) {
					t.Errorf("%s: Role %s grants\n%s\nwant %s\n%s", source, role.Name, indent(got), wantName, indent(want))
				}

				var binding rbacv1.RoleBinding
				convert(t, objs.named(t, "RoleBinding", "gkexec-runner"), &binding)
				wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "gkexec-agent", Namespace: inst.serviceAccountNamespace()}}
				if !reflect.DeepEqual(binding.Subjects, wantSubjects) || binding.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}) {
					t.Errorf("%s: RoleBinding binds %+v to %+v, want Role %s to %+v", source, binding.RoleRef, binding.Subjects, role.Name, wantSubjects)
				}
				objs.named(t, "ServiceAccount", "gkexec-agent")

				for _, k := range objs.keys() {
					if kind := objs[k]["kind"]; kind == "ClusterRole" || kind == "ClusterRoleBinding" {
						t.Errorf("%s: %s grants cluster-wide rights", source, k)
					}
				}
			}
		})
	}
}

// TestObjectsHonourRunnerContract checks the objects against the runner's own constants, so a
// change to the runner's labels or defaults fails here rather than in a cluster.
func TestObjectsHonourRunnerContract(t *testing.T) {
	t.Parallel()
	objs := kustomize(t, "manifests/base", "") // equal to the module's, by TestManifestsMatchModule

	t.Run("namespace enforces Pod Security restricted", func(t *testing.T) {
		labels := objs.ofKind(t, "Namespace")["metadata"].(map[string]any)["labels"].(map[string]any)
		for _, mode := range []string{"enforce", "audit", "warn"} {
			if labels["pod-security.kubernetes.io/"+mode] != "restricted" || labels["pod-security.kubernetes.io/"+mode+"-version"] != "latest" {
				t.Errorf("namespace labels %v: want pod-security.kubernetes.io/%s=restricted at version latest", labels, mode)
			}
		}
	})

	t.Run("NetworkPolicy denies all traffic of every Pod of the namespace", func(t *testing.T) {
		spec := objs.ofKind(t, "NetworkPolicy")["spec"].(map[string]any)
		want := map[string]any{
			"podSelector": map[string]any{}, // every Pod, labelled as a sandbox or not
			"policyTypes": []any{"Ingress", "Egress"},
		}
		if !reflect.DeepEqual(spec, want) {
			t.Errorf("NetworkPolicy spec\n%s\nwant (every Pod, no ingress or egress rules at all)\n%s", indent(spec), indent(want))
		}
	})

	t.Run("admission policy is in force in the namespace, for the runner's RuntimeClass and labels", func(t *testing.T) {
		testAdmissionPolicy(t, objs, "gkexec")
	})

	t.Run("PodDisruptionBudget protects running one-shot sandboxes, not idle pool Pods or sessions", func(t *testing.T) {
		selector := objs.ofKind(t, "PodDisruptionBudget")["spec"].(map[string]any)["selector"]
		want := map[string]any{
			"matchLabels": map[string]any{runner.LabelManagedBy: runner.ManagedByValue, runner.LabelComponent: runner.ComponentSandbox},
			"matchExpressions": []any{
				map[string]any{"key": runner.LabelPoolState, "operator": "NotIn", "values": []any{runner.PoolStateIdle}},
				// A session lives up to its maximum lifetime, hours: a drain may end it.
				map[string]any{"key": runner.LabelSession, "operator": "DoesNotExist"},
			},
		}
		if !reflect.DeepEqual(selector, want) {
			t.Errorf("PodDisruptionBudget selector\n%s\nwant\n%s", indent(selector), indent(want))
		}
	})

	t.Run("LimitRange defaults are the runner's defaults", func(t *testing.T) {
		limits := objs.ofKind(t, "LimitRange")["spec"].(map[string]any)["limits"].([]any)[0].(map[string]any)
		checks := []struct{ field, resource, want string }{
			{"defaultRequest", "cpu", runner.DefaultCPURequest},
			{"defaultRequest", "memory", runner.DefaultMemoryRequest},
			{"default", "cpu", runner.DefaultCPULimit},
			{"default", "memory", runner.DefaultMemoryLimit},
			{"default", "ephemeral-storage", runner.DefaultEphemeralStorageLimit},
		}
		for _, c := range checks {
			got, _ := limits[c.field].(map[string]any)[c.resource].(string)
			if compareQuantities(t, got, c.want) != 0 {
				t.Errorf("LimitRange %s.%s = %q, want the runner's default %q", c.field, c.resource, got, c.want)
			}
			if maxQ, _ := limits["max"].(map[string]any)[c.resource].(string); compareQuantities(t, maxQ, c.want) < 0 {
				t.Errorf("LimitRange max.%s = %q is below the runner's default %q: every execution would be rejected", c.resource, maxQ, c.want)
			}
		}
	})

	t.Run("ResourceQuota bounds executions and fits 50 at the runner's defaults", func(t *testing.T) {
		hard := objs.ofKind(t, "ResourceQuota")["spec"].(map[string]any)["hard"].(map[string]any)
		const executions = 50
		perExecution := map[string]string{
			"count/jobs.batch":         "1",
			"pods":                     "1",
			"configmaps":               "1",
			"requests.cpu":             runner.DefaultCPURequest,
			"requests.memory":          runner.DefaultMemoryRequest,
			"limits.cpu":               runner.DefaultCPULimit,
			"limits.memory":            runner.DefaultMemoryLimit,
			"limits.ephemeral-storage": runner.DefaultEphemeralStorageLimit,
		}
		for name, each := range perExecution {
			got, ok := hard[name].(string)
			if !ok {
				t.Errorf("ResourceQuota does not bound %s", name)
				continue
			}
			need := resource.MustParse(each)
			need.Mul(executions)
			if compareQuantities(t, got, need.String()) < 0 {
				t.Errorf("ResourceQuota %s = %s, below %d executions at the runner's defaults (%s)", name, got, executions, need.String())
			}
		}
		if len(hard) != len(perExecution) {
			t.Errorf("ResourceQuota bounds %d resources, want exactly %d: %v", len(hard), len(perExecution), hard)
		}
	})

	t.Run("agent ServiceAccount keeps its token", func(t *testing.T) {
		sa := objs.ofKind(t, "ServiceAccount")
		if v, set := sa["automountServiceAccountToken"]; set && v != true {
			t.Errorf("the agent needs its token; automountServiceAccountToken is %v", v)
		}
	})

	t.Run("RuntimeClass of the non-GKE overlay is GKE Sandbox's", func(t *testing.T) {
		rc := kustomize(t, "manifests/overlays/non-gke", "").ofKind(t, "RuntimeClass")
		delete(rc["metadata"].(map[string]any), "labels")
		want := map[string]any{
			"apiVersion": "node.k8s.io/v1",
			"kind":       "RuntimeClass",
			"metadata":   map[string]any{"name": runner.DefaultRuntimeClassName},
			"handler":    "gvisor",
			"scheduling": map[string]any{
				"nodeSelector": map[string]any{"sandbox.gke.io/runtime": "gvisor"},
				"tolerations":  []any{map[string]any{"key": "sandbox.gke.io/runtime", "operator": "Equal", "value": "gvisor", "effect": "NoSchedule"}},
			},
		}
		if !reflect.DeepEqual(rc, want) {
			t.Errorf("RuntimeClass\n%s\nwant\n%s", indent(rc), indent(want))
		}
	})
}

// normalizeRules sorts rules and their lists, so that order alone is never a difference.
func normalizeRules(rules []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	out := make([]rbacv1.PolicyRule, 0, len(rules))
	for _, r := range rules {
		r = *r.DeepCopy()
		for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames, r.NonResourceURLs} {
			sort.Strings(list)
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return out
}

// compareQuantities compares two Kubernetes quantities like strings.Compare.
func compareQuantities(t *testing.T, a, b string) int {
	t.Helper()
	qa, err := resource.ParseQuantity(a)
	if err != nil {
		t.Fatalf("quantity %q: %v", a, err)
	}
	return qa.Cmp(resource.MustParse(b))
}

// convert turns a generic object into a typed one.
func convert(t *testing.T, o object, into any) {
	t.Helper()
	raw, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		t.Fatalf("%s: %v", objectKey(o), err)
	}
}

func indent(v any) string {
	raw, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		return fmt.Sprint(v)
	}
	return "  " + string(raw)
}
