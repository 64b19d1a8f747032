package bench

import "testing"

func TestDescribeNamesRequestsWithoutObjectNames(t *testing.T) {
	t.Parallel()
	cases := []struct {
		method, path  string
		watch, follow bool
		want          string
	}{
		{"POST", "/api/v1/namespaces/sb/configmaps", false, false, "POST configmaps"},
		{"PATCH", "/api/v1/namespaces/sb/configmaps/gkexec-1", false, false, "PATCH configmaps"},
		{"GET", "/api/v1/namespaces/sb/pods/gkexec-1-abcde/log", false, true, "GET pods/log (follow)"},
		{"POST", "/apis/batch/v1/namespaces/sb/jobs", false, false, "POST jobs"},
		{"DELETE", "/apis/batch/v1/namespaces/sb/jobs/gkexec-1", false, false, "DELETE jobs"},
		{"GET", "/api/v1/namespaces/sb/pods", true, false, "WATCH pods"},
		{"GET", "/apis/node.k8s.io/v1/runtimeclasses/gvisor", false, false, "GET runtimeclasses"},
	}
	for _, c := range cases {
		if got := describe(c.method, c.path, c.watch, c.follow); got != c.want {
			t.Errorf("describe(%s %s) = %q, want %q", c.method, c.path, got, c.want)
		}
	}
}
