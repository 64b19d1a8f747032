package fakecluster

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// HonourDeletePreconditions makes client refuse a delete whose UID precondition names another
// object than the one under that name, as the API server does (client-go's fake ignores
// preconditions): the runner deletes "this Pod, this Job", never a later one that took its name.
// A Cluster's client honours them from the start.
func HonourDeletePreconditions(client *fake.Clientset) {
	client.PrependReactor("delete", "*", func(action k8stesting.Action) (bool, runtime.Object, error) {
		return deletePreconditions(client.Tracker(), action)
	})
}

func deletePreconditions(tracker k8stesting.ObjectTracker, action k8stesting.Action) (bool, runtime.Object, error) {
	del, ok := action.(k8stesting.DeleteAction)
	if !ok {
		return false, nil, nil
	}
	want := del.GetDeleteOptions().Preconditions
	if want == nil || want.UID == nil {
		return false, nil, nil
	}
	obj, err := tracker.Get(action.GetResource(), action.GetNamespace(), del.GetName())
	if err != nil {
		return false, nil, nil // the default reactor answers NotFound
	}
	m, err := meta.Accessor(obj)
	if err != nil || m.GetUID() == *want.UID {
		return false, nil, nil
	}
	return true, nil, apierrors.NewConflict(action.GetResource().GroupResource(), del.GetName(),
		fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *want.UID, m.GetUID()))
}
