package gc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/internal/podspec"
)

func TestCollectGarbageDeletesOnlyOldObjectsOfOurs(t *testing.T) {
	t.Parallel()
	meta := func(name string, age time.Duration, ours bool) metav1.ObjectMeta {
		m := metav1.ObjectMeta{Name: name, Namespace: "sb", CreationTimestamp: metav1.NewTime(time.Now().Add(-age))}
		if ours {
			m.Labels = map[string]string{podspec.LabelManagedBy: podspec.ManagedByValue, podspec.LabelExecutionID: name}
		}
		return m
	}
	client := fake.NewSimpleClientset(
		&batchv1.Job{ObjectMeta: meta("gkexec-old", time.Hour, true)},
		&corev1.ConfigMap{ObjectMeta: meta("gkexec-old", time.Hour, true)},
		&batchv1.Job{ObjectMeta: meta("gkexec-live", time.Minute, true)},
		&corev1.ConfigMap{ObjectMeta: meta("gkexec-live", time.Minute, true)},
		&batchv1.Job{ObjectMeta: meta("someone-elses", time.Hour, false)},
	)
	ctx := context.Background()

	found, err := Collect(ctx, client, "sb", 10*time.Minute, true)
	if err != nil || len(found) != 2 || found[0].Kind != "Job" || found[1].Kind != "ConfigMap" {
		t.Fatalf("dry run found %+v, %v; want the old Job then its ConfigMap", found, err)
	}
	if jobs, _ := client.BatchV1().Jobs("sb").List(ctx, metav1.ListOptions{}); len(jobs.Items) != 3 {
		t.Fatal("dry run deleted something")
	}

	if _, err := Collect(ctx, client, "sb", 10*time.Minute, false); err != nil {
		t.Fatal(err)
	}
	jobs, _ := client.BatchV1().Jobs("sb").List(ctx, metav1.ListOptions{})
	cms, _ := client.CoreV1().ConfigMaps("sb").List(ctx, metav1.ListOptions{})
	var left []string
	for _, j := range jobs.Items {
		left = append(left, "job/"+j.Name)
	}
	for _, c := range cms.Items {
		left = append(left, "cm/"+c.Name)
	}
	want := "job/gkexec-live job/someone-elses cm/gkexec-live"
	if got := join(left); got != want {
		t.Errorf("left %q, want %q", got, want)
	}
}

// One delete fails: gc still tries every other object, and reports exactly which it deleted, which
// it could not delete and why.
func TestCollectGarbageTriesEveryObjectAndReportsEachOutcome(t *testing.T) {
	t.Parallel()
	old := metav1.NewTime(time.Now().Add(-time.Hour))
	var objs []runtime.Object
	for _, name := range []string{"gkexec-a", "gkexec-b", "gkexec-c"} {
		m := metav1.ObjectMeta{Name: name, Namespace: "sb", CreationTimestamp: old,
			Labels: map[string]string{podspec.LabelManagedBy: podspec.ManagedByValue, podspec.LabelExecutionID: strings.TrimPrefix(name, "gkexec-")}}
		objs = append(objs, &batchv1.Job{ObjectMeta: m}, &corev1.ConfigMap{ObjectMeta: m})
	}
	client := fake.NewSimpleClientset(objs...)
	client.PrependReactor("delete", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.DeleteAction).GetName() == "gkexec-b" {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "gkexec-b", errors.New("denied"))
		}
		return false, nil, nil
	})
	client.PrependReactor("delete", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.DeleteAction).GetName() == "gkexec-c" {
			return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, "gkexec-c") // gone meanwhile
		}
		return false, nil, nil
	})
	ctx := context.Background()

	found, err := Collect(ctx, client, "sb", 10*time.Minute, false)
	if !errors.Is(err, runner.ErrForbidden) || !strings.Contains(err.Error(), "jobs sb/gkexec-b") {
		t.Errorf("err = %v, want runner.ErrForbidden naming jobs sb/gkexec-b", err)
	}
	var got []string
	for _, l := range found {
		state := "deleted"
		switch {
		case l.Err != nil:
			state = "failed"
			if !errors.Is(l.Err, runner.ErrForbidden) {
				t.Errorf("%s %s: Err = %v, want runner.ErrForbidden", l.Kind, l.Name, l.Err)
			}
		case l.Gone:
			state = "gone"
		case !l.Deleted:
			state = "untouched"
		}
		got = append(got, l.Kind+"/"+l.Name+":"+state)
	}
	want := "Job/gkexec-a:deleted ConfigMap/gkexec-a:deleted Job/gkexec-b:failed ConfigMap/gkexec-b:deleted " +
		"Job/gkexec-c:deleted ConfigMap/gkexec-c:gone"
	if join(got) != want {
		t.Errorf("report\n got %s\nwant %s", join(got), want)
	}
	jobs, _ := client.BatchV1().Jobs("sb").List(ctx, metav1.ListOptions{})
	cms, _ := client.CoreV1().ConfigMaps("sb").List(ctx, metav1.ListOptions{})
	if len(jobs.Items) != 1 || jobs.Items[0].Name != "gkexec-b" || len(cms.Items) != 1 || cms.Items[0].Name != "gkexec-c" {
		t.Errorf("left %d jobs %d configmaps, want only the job that failed (and the configmap the reactor pretended was gone)", len(jobs.Items), len(cms.Items))
	}
}

// A list that fails does not stop the other kind from being collected.
func TestCollectGarbageGoesOnWhenAListFails(t *testing.T) {
	t.Parallel()
	m := metav1.ObjectMeta{Name: "gkexec-a", Namespace: "sb", CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Hour)),
		Labels: map[string]string{podspec.LabelManagedBy: podspec.ManagedByValue}}
	client := fake.NewSimpleClientset(&batchv1.Job{ObjectMeta: m}, &corev1.ConfigMap{ObjectMeta: m})
	client.PrependReactor("list", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "", errors.New("denied"))
	})
	found, err := Collect(context.Background(), client, "sb", time.Minute, false)
	if !errors.Is(err, runner.ErrForbidden) {
		t.Errorf("err = %v, want runner.ErrForbidden for the job list", err)
	}
	if len(found) != 1 || found[0].Kind != "ConfigMap" || !found[0].Deleted {
		t.Errorf("found %+v, want the ConfigMap, deleted", found)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

// Between gc's list and its delete, a session closed and was opened again under its ID: the
// marker now under that name is the new session's, and gc must not take it (the ID would be free
// for a second process to open while the session lives).
func TestCollectGarbageDeletesOnlyTheObjectsItListed(t *testing.T) {
	t.Parallel()
	marker := func(uid types.UID) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "gkexec-session-s1", Namespace: "sb", UID: uid,
			CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Hour)),
			Labels: map[string]string{podspec.LabelManagedBy: podspec.ManagedByValue, podspec.LabelComponent: podspec.ComponentSession,
				podspec.LabelSession: "s1"}}}
	}
	client := fake.NewSimpleClientset(marker("uid-old"))
	fakecluster.HonourDeletePreconditions(client)
	reopened := false
	client.PrependReactor("delete", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		if !reopened {
			reopened = true
			cms := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
			if err := client.Tracker().Delete(cms, "sb", "gkexec-session-s1"); err != nil {
				t.Fatal(err)
			}
			if err := client.Tracker().Create(cms, marker("uid-new"), "sb"); err != nil {
				t.Fatal(err)
			}
		}
		return false, nil, nil
	})
	found, err := Collect(context.Background(), client, "sb", 10*time.Minute, false)
	if err != nil || len(found) != 1 || !found[0].Gone || found[0].Deleted {
		t.Fatalf("Collect: %+v, %v; want the listed marker reported gone, nothing deleted", found, err)
	}
	cm, err := client.CoreV1().ConfigMaps("sb").Get(context.Background(), "gkexec-session-s1", metav1.GetOptions{})
	if err != nil || cm.UID != "uid-new" {
		t.Errorf("the reopened session's marker: %v (uid %v); gc deleted an object it never listed", err, cm.GetUID())
	}
}
