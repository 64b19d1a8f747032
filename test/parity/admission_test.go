package parity

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/gkexec/gkexec/runner"
)

// runtimeClassLabel on the sandbox namespace selects it for the admission policy and names the
// RuntimeClass the policy requires.
const runtimeClassLabel = "gkexec.dev/sandbox-runtime-class"

// TestAdmissionPolicyInEveryInstallation: every installation brings the policy that admits only
// sandbox Pods, named after its own namespace (so that two installations never share one, and
// deleting one leaves the other's in force), bound to the namespaces carrying the label.
func TestAdmissionPolicyInEveryInstallation(t *testing.T) {
	t.Parallel()
	for _, inst := range installations {
		t.Run(inst.name, func(t *testing.T) {
			t.Parallel()
			for source, objs := range map[string]objects{"kustomize": inst.fromKustomize(t), "module": renderModule(t, inst.module)} {
				t.Run(source, func(t *testing.T) {
					testAdmissionPolicy(t, objs, inst.namespace)
				})
			}
		})
	}
}

// testAdmissionPolicy checks the policy, its binding and the namespace's label against the runner's
// constants; the e2e stage 13_admission proves on a real API server what the policy admits.
func testAdmissionPolicy(t *testing.T, objs objects, namespace string) {
	t.Helper()
	labels := objs.named(t, "Namespace", namespace)["metadata"].(map[string]any)["labels"].(map[string]any)
	if got := labels[runtimeClassLabel]; got != runner.DefaultRuntimeClassName {
		t.Errorf("namespace label %s = %v, want the runner's RuntimeClass %q", runtimeClassLabel, got, runner.DefaultRuntimeClassName)
	}

	wantName := "gkexec-sandbox-pods-" + namespace
	policy := objs.ofKind(t, "ValidatingAdmissionPolicy")
	binding := objs.ofKind(t, "ValidatingAdmissionPolicyBinding")
	for _, o := range []object{policy, binding} {
		if name := o["metadata"].(map[string]any)["name"]; name != wantName {
			t.Errorf("%s is named %v, want %s (after its namespace)", o["kind"], name, wantName)
		}
	}

	bspec := binding["spec"].(map[string]any)
	wantBinding := map[string]any{
		"policyName":        wantName,
		"validationActions": []any{"Deny"},
		"matchResources": map[string]any{"namespaceSelector": map[string]any{
			"matchExpressions": []any{map[string]any{"key": runtimeClassLabel, "operator": "Exists"}},
		}},
	}
	if !reflect.DeepEqual(bspec, wantBinding) {
		t.Errorf("binding spec\n%s\nwant\n%s", indent(bspec), indent(wantBinding))
	}

	pspec := policy["spec"].(map[string]any)
	if pspec["failurePolicy"] != "Fail" {
		t.Errorf("policy failurePolicy = %v, want Fail: a policy that cannot be evaluated must not admit", pspec["failurePolicy"])
	}
	// pods only, not pods/status: the kubelet's and the controllers' status updates are not checked.
	wantRules := []any{map[string]any{
		"apiGroups": []any{""}, "apiVersions": []any{"v1"}, "operations": []any{"CREATE", "UPDATE"}, "resources": []any{"pods"},
	}}
	if rules := pspec["matchConstraints"].(map[string]any)["resourceRules"]; !reflect.DeepEqual(rules, wantRules) {
		t.Errorf("policy matches\n%s\nwant\n%s", indent(rules), indent(wantRules))
	}
	// The CEL names the runner's labels and the namespace's label, spelled as the Go constants are.
	var cel strings.Builder
	for _, list := range []string{"matchConditions", "variables", "validations"} {
		for _, item := range pspec[list].([]any) {
			fmt.Fprintln(&cel, item.(map[string]any)["expression"])
		}
	}
	for _, want := range []string{
		fmt.Sprintf("[?'%s'].orValue('') == '%s'", runner.LabelManagedBy, runner.ManagedByValue),
		fmt.Sprintf("[?'%s'].orValue('') == '%s'", runner.LabelComponent, runner.ComponentSandbox),
		fmt.Sprintf("[?'%s']", runtimeClassLabel),
	} {
		if !strings.Contains(cel.String(), want) {
			t.Errorf("the policy's expressions lack %s:\n%s", want, cel.String())
		}
	}
}

// TestWarmPoolCarriesWhatThePolicyRequires: the Pods of runner.WarmPoolDeployment are labelled as
// sandboxes and run under the RuntimeClass the namespace's label names, at the runner's defaults.
func TestWarmPoolCarriesWhatThePolicyRequires(t *testing.T) {
	t.Parallel()
	ns := kustomize(t, "manifests/base", "").ofKind(t, "Namespace")
	template := runnersWarmPool(t, runner.Options{Namespace: "gkexec"}, 2, "")["spec"].(map[string]any)["template"].(map[string]any)
	labels := template["metadata"].(map[string]any)["labels"].(map[string]any)
	if labels[runner.LabelManagedBy] != runner.ManagedByValue || labels[runner.LabelComponent] != runner.ComponentSandbox {
		t.Errorf("warm pool Pods are labelled %v, want %s=%s and %s=%s", labels, runner.LabelManagedBy, runner.ManagedByValue, runner.LabelComponent, runner.ComponentSandbox)
	}
	want := ns["metadata"].(map[string]any)["labels"].(map[string]any)[runtimeClassLabel]
	if got := template["spec"].(map[string]any)["runtimeClassName"]; got != want {
		t.Errorf("warm pool Pods run under RuntimeClass %v; the namespace admits only %v", got, want)
	}
}
