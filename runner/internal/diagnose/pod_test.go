package diagnose

import "testing"

func TestTransientPodCreateFailures(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		`Error creating: Operation cannot be fulfilled on resourcequotas "gkexec-quota": the object has been modified; please apply your changes to the latest version and try again`: true,
		`Error creating: pods "x" is forbidden: exceeded quota: sandbox, requested: pods=1, used: pods=10, limited: pods=10`:                                                          false,
		`Error creating: pods "x" is forbidden: pod rejected: RuntimeClass "gvisor" not found`:                                                                                        false,
		`Error creating: pods "x" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true`:                                                                       false,
	}
	for msg, want := range cases {
		if got := transientCreateFailure(msg); got != want {
			t.Errorf("transientCreateFailure(%q) = %v, want %v", msg, got, want)
		}
	}
}
