package parity

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// object is one Kubernetes object as generic JSON, the form both renderers are compared in.
type object = map[string]any

// objects maps objectKey(o) to o.
type objects map[string]object

func objectKey(o object) string {
	meta, _ := o["metadata"].(map[string]any)
	return fmt.Sprintf("%v %v %v/%v", o["apiVersion"], o["kind"], meta["namespace"], meta["name"])
}

func (objs objects) keys() []string {
	keys := make([]string, 0, len(objs))
	for k := range objs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ofKind returns the single object of kind, failing the test unless there is exactly one.
func (objs objects) ofKind(t *testing.T, kind string) object {
	t.Helper()
	var found []object
	for _, o := range objs {
		if o["kind"] == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s, found %d among %v", kind, len(found), objs.keys())
	}
	return found[0]
}

// named returns the object of kind named name, failing the test unless there is exactly one
// (an installation with the egress gateway has two Namespaces, and Roles in both).
func (objs objects) named(t *testing.T, kind, name string) object {
	t.Helper()
	var found []object
	for _, o := range objs {
		if o["kind"] == kind && o["metadata"].(map[string]any)["name"] == name {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s %s, found %d among %v", kind, name, len(found), objs.keys())
	}
	return found[0]
}

// decodeYAML reads a stream of YAML documents into objects, rejecting duplicates.
func decodeYAML(r io.Reader) (objects, error) {
	out := objects{}
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	for {
		var o object
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if o == nil { // an empty document
			continue
		}
		k := objectKey(o)
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("object %s declared twice", k)
		}
		out[k] = o
	}
}

// repoRoot is the repository's top directory, found from this file's location.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test's source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func cacheDir() string {
	if d := os.Getenv("GKEXEC_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "gkexec")
}

// missingTool skips the test, or fails it when GKEXEC_REQUIRE_TOOLS is set, so that CI (make
// tf-test) can never pass by skipping.
func missingTool(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("GKEXEC_REQUIRE_TOOLS") != "" {
		t.Fatalf("%s (GKEXEC_REQUIRE_TOOLS is set, so this is an error)", msg)
	}
	t.Skip(msg + "; run `make tf-test`, which provides it")
}

// findKubectl returns $KUBECTL, the local cluster's kubectl, or kubectl on PATH.
func findKubectl(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("KUBECTL"), filepath.Join(cacheDir(), "bin", "kubectl")}
	if p, err := exec.LookPath("kubectl"); err == nil {
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if info, err := os.Stat(c); err == nil && !info.IsDir() {
			return c
		}
	}
	missingTool(t, "kubectl not found ($KUBECTL, %s/bin/kubectl or PATH): it renders manifests/ with `kubectl kustomize`", cacheDir())
	return ""
}

// findTerraform returns $GKEXEC_TERRAFORM, terraform or tofu on PATH, or the OpenTofu that
// test/terraform builds into the cache.
func findTerraform(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GKEXEC_TERRAFORM"); p != "" {
		return p
	}
	for _, name := range []string{"terraform", "tofu"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	matches, _ := filepath.Glob(filepath.Join(cacheDir(), "terraform", "opentofu-v*", "tofu"))
	if len(matches) > 0 {
		return matches[len(matches)-1]
	}
	missingTool(t, "neither terraform nor tofu found ($GKEXEC_TERRAFORM, PATH, %s/terraform/opentofu-*)", cacheDir())
	return ""
}

// offlineCLIConfig is the CLI config test/terraform/providers.sh writes. Only it is used: it
// installs providers from local mirrors and never from a registry.
func offlineCLIConfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(cacheDir(), "terraform", "cli.tfrc")
	if _, err := os.Stat(p); err != nil {
		missingTool(t, "no offline Terraform CLI config at %s (test/terraform/providers.sh writes it)", p)
	}
	return p
}

func run(ctx context.Context, dir string, env []string, stdin string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s in %s: %w\n%s%s", name, strings.Join(args, " "), dir, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

// retargetKustomization is the overlay manifests/README.md gives for installing the base
// (resource, a path) into another namespace: `namespace:` moves every namespaced object, and the
// replacements rename the cluster-scoped admission policy and its binding, and the warm pool's
// PriorityClass (where its Pods name it), after the namespace, as the module names them, so that two
// installations never share one.
func retargetKustomization(namespace, resource string) string {
	return fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %s
resources:
  - %s
replacements:
  - source: {kind: Namespace, fieldPath: metadata.name}
    targets:
      - select: {group: admissionregistration.k8s.io}
        fieldPaths: [metadata.name]
        options: {delimiter: "-", index: 3}
      - select: {kind: ValidatingAdmissionPolicyBinding}
        fieldPaths: [spec.policyName]
        options: {delimiter: "-", index: 3}
      - select: {kind: PriorityClass}
        fieldPaths: [metadata.name]
        options: {delimiter: "-", index: 3}
      - select: {kind: Deployment, labelSelector: app.kubernetes.io/component=warm-pool}
        fieldPaths: [spec.template.spec.priorityClassName]
        options: {delimiter: "-", index: 3}
`, namespace, resource)
}

// clusterScopedUnknownToKustomize are cluster-scoped kinds missing from kustomize's built-in table
// (kyaml/openapi, v0.21 in kubectl 1.37): it takes them for namespaced and writes the namespace
// into their metadata, which the API server drops on create. The comparison drops it too.
var clusterScopedUnknownToKustomize = map[string]bool{
	"ValidatingAdmissionPolicy":        true,
	"ValidatingAdmissionPolicyBinding": true,
}

// kustomize renders base (a directory relative to the repository) with `kubectl kustomize`;
// with a namespace, through retargetKustomization, the way the e2e tests retarget manifests/
// into a fresh namespace.
func kustomize(t *testing.T, base, namespace string) objects {
	t.Helper()
	kubectl := findKubectl(t)
	baseDir := filepath.Join(repoRoot(t), base)
	return renderOnce(t, "kustomize "+base+" "+namespace, func(work string) (objects, error) {
		dir := baseDir
		if namespace != "" {
			dir = work
			rel, err := filepath.Rel(dir, baseDir)
			if err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(retargetKustomization(namespace, rel)), 0o644); err != nil {
				return nil, err
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := run(ctx, dir, nil, "", kubectl, "kustomize", ".")
		if err != nil {
			return nil, err
		}
		objs, err := decodeYAML(bytes.NewReader(out))
		if err != nil {
			return nil, err
		}
		rekeyed := objects{}
		for _, o := range objs {
			if clusterScopedUnknownToKustomize[fmt.Sprint(o["kind"])] {
				delete(o["metadata"].(map[string]any), "namespace")
			}
			rekeyed[objectKey(o)] = o
		}
		return rekeyed, nil
	})
}

// copyModule copies a module's configuration, leaving out what `terraform init` may have left
// in a developer's checkout.
func copyModule(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		switch {
		case d.IsDir() && d.Name() == ".terraform":
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		case d.Name() == ".terraform.lock.hcl" || strings.Contains(d.Name(), ".tfstate"):
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
}

// renderModule evaluates the namespace module's manifests output for vars with `terraform
// console`, in a copy of the module called from a generated root module, with the offline CLI
// config. Nothing is planned or applied and no cluster is contacted.
func renderModule(t *testing.T, vars map[string]any) objects {
	t.Helper()
	tf := findTerraform(t)
	cliConfig := offlineCLIConfig(t)
	moduleDir := filepath.Join(repoRoot(t), "terraform", "modules", "sandbox-namespace")
	key, err := json.Marshal(vars)
	if err != nil {
		t.Fatal(err)
	}
	return renderOnce(t, "module "+string(key), func(work string) (objects, error) {
		if err := copyModule(moduleDir, filepath.Join(work, "module")); err != nil {
			return nil, err
		}
		call := map[string]any{"source": "../module"}
		for k, v := range vars {
			call[k] = v
		}
		mainTF, err := json.Marshal(map[string]any{"module": map[string]any{"namespace": call}})
		if err != nil {
			return nil, err
		}
		root := filepath.Join(work, "root")
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(root, "main.tf.json"), mainTF, 0o644); err != nil {
			return nil, err
		}

		env := []string{"TF_CLI_CONFIG_FILE=" + cliConfig, "CHECKPOINT_DISABLE=1", "TF_IN_AUTOMATION=1", "TF_INPUT=0"}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := run(ctx, root, env, "", tf, "init", "-backend=false", "-input=false", "-no-color"); err != nil {
			return nil, fmt.Errorf("terraform init with the offline providers (if the kubectl provider is missing, run test/terraform/providers.sh): %w", err)
		}
		// Base64 keeps the value free of the quoting and escaping console applies to strings.
		out, err := run(ctx, root, env, "base64encode(jsonencode(module.namespace.manifests))\n", tf, "console", "-no-color")
		if err != nil {
			return nil, err
		}
		raw, err := base64.StdEncoding.DecodeString(strings.Trim(strings.TrimSpace(string(out)), `"`))
		if err != nil {
			return nil, fmt.Errorf("terraform console printed %q: %w", out, err)
		}
		var manifests map[string]string
		if err := json.Unmarshal(raw, &manifests); err != nil {
			return nil, err
		}
		all := objects{}
		for name, doc := range manifests {
			objs, err := decodeYAML(strings.NewReader(doc))
			if err != nil {
				return nil, fmt.Errorf("module manifest %s: %w", name, err)
			}
			if len(objs) != 1 {
				return nil, fmt.Errorf("module manifest %s holds %d objects, want 1 (kubectl_manifest applies one)", name, len(objs))
			}
			for k, o := range objs {
				if _, dup := all[k]; dup {
					return nil, fmt.Errorf("module declares %s twice", k)
				}
				all[k] = o
			}
		}
		return all, nil
	})
}

// Several tests compare the same renderings; each is made once per test binary.
var (
	renders    sync.Map // key -> *rendering
	workRoot   string   // scratch space of the renderings, removed by TestMain
	workRootMu sync.Mutex
)

type rendering struct {
	once sync.Once
	objs objects
	err  error
}

// renderOnce runs render (in a fresh scratch directory) the first time key is asked for, and
// returns a deep copy of its result, so that tests may modify what they get.
func renderOnce(t *testing.T, key string, render func(work string) (objects, error)) objects {
	t.Helper()
	v, _ := renders.LoadOrStore(key, &rendering{})
	r := v.(*rendering)
	r.once.Do(func() {
		work, err := scratchDir()
		if err != nil {
			r.err = err
			return
		}
		r.objs, r.err = render(work)
	})
	if r.err != nil {
		t.Fatalf("%s: %v", key, r.err)
	}
	raw, err := json.Marshal(r.objs)
	if err != nil {
		t.Fatal(err)
	}
	var copied objects
	if err := json.Unmarshal(raw, &copied); err != nil {
		t.Fatal(err)
	}
	return copied
}

func scratchDir() (string, error) {
	workRootMu.Lock()
	defer workRootMu.Unlock()
	if workRoot == "" {
		dir, err := os.MkdirTemp("", "gkexec-parity-")
		if err != nil {
			return "", err
		}
		workRoot = dir
	}
	return os.MkdirTemp(workRoot, "render-")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if workRoot != "" {
		_ = os.RemoveAll(workRoot)
	}
	os.Exit(code)
}
