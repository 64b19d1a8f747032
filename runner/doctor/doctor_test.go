package doctor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/runner"
)

func TestDoctorNamesTheMissingVerbAndQuotaShortage(t *testing.T) {
	t.Parallel()
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "sandbox", Namespace: "sandbox"},
		Status: corev1.ResourceQuotaStatus{
			Hard: corev1.ResourceList{"pods": resource.MustParse("10"), "limits.memory": resource.MustParse("5Gi")},
			Used: corev1.ResourceList{"pods": resource.MustParse("10"), "limits.memory": resource.MustParse("1Gi")},
		},
	}
	rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "gvisor"}, Handler: "runsc"}
	fc := fakecluster.New(t, fakecluster.Scenario{}, quota, rc)
	fc.Client.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		attr := review.Spec.ResourceAttributes
		review.Status.Allowed = !(attr.Resource == "pods" && attr.Subresource == "log")
		return true, review, nil
	})
	checks := Run(context.Background(), newRunner(t, fc), Options{})
	byName := map[string]Check{}
	for _, c := range checks {
		byName[c.Name] = c
	}
	rbac := byName["RBAC allows every call the runner makes"]
	if rbac.Status != Fail || !strings.Contains(rbac.Detail, "get pods/log") || strings.Contains(rbac.Detail, "create jobs") {
		t.Errorf("RBAC check = %+v, want a failure naming only get pods/log", rbac)
	}
	q := byName["resource quota has room for an execution"]
	if q.Status != Fail || !strings.Contains(q.Detail, "pods: 10 of 10 used") {
		t.Errorf("quota check = %+v, want pods exhausted", q)
	}
	if c := byName["RuntimeClass gvisor exists"]; c.Status != Pass || c.Detail != "handler runsc" {
		t.Errorf("RuntimeClass check = %+v", c)
	}
	if c := byName["a schedulable gVisor node exists"]; c.Status != Fail {
		t.Errorf("node check = %+v, want a failure without sandbox nodes", c)
	}
}

// A least-privilege identity cannot read RuntimeClasses or nodes; those warnings point at the
// smoke execution only when it ran, and say what it showed.
func TestDoctorWarningsPointAtTheSmokeCheckOnlyWhenItRan(t *testing.T) {
	t.Parallel()
	gvisor := new(fakecluster.Log).Out("kernel Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016\nruntime gvisor\n" +
		"language bash yes bash\nlanguage javascript no node\nlanguage python yes python3\n").End(fakecluster.End{})
	cases := []struct {
		name      string
		smoke     bool
		sc        fakecluster.Scenario
		wantSmoke Status // "": no smoke check in the list
		wantFix   string // in the Fix of both warnings
		wantNot   string // in neither
	}{
		{"smoke off", false, fakecluster.Scenario{}, "", "run `gkexec doctor` with --smoke", "smoke execution proved"},
		{"smoke passed", true, fakecluster.Scenario{Steps: []func(*corev1.Pod){fakecluster.ScheduledOn("n"), fakecluster.Running}, Log: gvisor}, Pass,
			"the smoke execution below proved", "did not prove"},
		{"smoke failed", true, fakecluster.Scenario{Steps: []func(*corev1.Pod){fakecluster.ScheduledOn("n"), fakecluster.Running},
			Log: new(fakecluster.Log).Err("boom").End(fakecluster.End{ExitCode: 1})}, Fail, "the smoke execution below did not prove", "below proved"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fc := fakecluster.New(t, tc.sc)
			deny := func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "x"}, "", errors.New("cluster-scoped"))
			}
			fc.Client.PrependReactor("get", "runtimeclasses", deny)
			fc.Client.PrependReactor("list", "nodes", deny)
			checks := Run(context.Background(), newRunner(t, fc), Options{Smoke: tc.smoke})
			byName := map[string]Check{}
			for _, c := range checks {
				byName[c.Name] = c
			}
			if got := byName["smoke execution in the sandbox"].Status; got != tc.wantSmoke {
				t.Errorf("smoke check status %q, want %q", got, tc.wantSmoke)
			}
			languages, said := byName["languages the image runs"]
			switch want := "bash, python; not javascript (no node on the image's PATH)"; {
			case tc.wantSmoke == Pass && (languages.Status != Pass || languages.Detail != want):
				t.Errorf("languages check %+v, want detail %q", languages, want)
			case tc.wantSmoke != Pass && said:
				t.Errorf("languages check %+v without a smoke execution that ran", languages)
			}
			for _, name := range []string{"RuntimeClass gvisor exists", "a schedulable gVisor node exists"} {
				c := byName[name]
				if c.Status != Warn || !strings.Contains(c.Fix, tc.wantFix) || strings.Contains(c.Fix, tc.wantNot) {
					t.Errorf("%s: %+v; want a warning whose fix says %q and not %q", name, c, tc.wantFix, tc.wantNot)
				}
			}
		})
	}
}

// newRunner is a runner on the fake cluster, as `gkexec doctor` makes one.
func newRunner(t *testing.T, fc *fakecluster.Cluster) *runner.Runner {
	t.Helper()
	r, err := runner.New(runner.Options{Namespace: fakecluster.Namespace, Client: fc.Client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// The smoke code, run by a real python3 on an image (here: a PATH) with bash and without node,
// says so in the form readSmoke reads.
func TestSmokeCodeSaysWhichLanguagesTheImageRuns(t *testing.T) {
	t.Parallel()
	python, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Fatalf("python3 is required for this test: %v", err)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	image := t.TempDir()
	for name, target := range map[string]string{"python3": strings.TrimSpace(string(python)), "bash": bash} {
		if err := os.Symlink(target, filepath.Join(image, name)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(strings.TrimSpace(string(python)), "-c", smokeCode)
	cmd.Env = []string{"PATH=" + image}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the smoke code: %v", err)
	}
	seen := readSmoke(string(out))
	if !strings.HasPrefix(seen.kernel, "Linux version") || seen.runtime != "not-gvisor" ||
		!slices.Equal(seen.runs, []string{"bash", "python"}) || !slices.Equal(seen.lacks, []string{"javascript (no node on the image's PATH)"}) {
		t.Errorf("read %+v from %q", seen, out)
	}
}
