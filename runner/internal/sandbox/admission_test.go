package sandbox

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// queuedSignal makes a signal on the returned channel each time a waiter joins a's queue.
func queuedSignal(a *Admission) <-chan struct{} {
	ch := make(chan struct{}, 100)
	a.OnQueued = func() { ch <- struct{}{} }
	return ch
}

// await waits for a signal on ch, failing the test if none comes within a generous bound.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestAdmissionIsFirstComeFirstServed(t *testing.T) {
	t.Parallel()
	a := NewAdmission(1)
	queued := queuedSignal(a)
	leave, err := a.admit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	order := make(chan int, n)
	for i := range n {
		go func() {
			leave, err := a.admit(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			leave()
		}()
		await(t, queued, "a waiter in the queue") // waiter i is in line before waiter i+1 arrives
	}
	leave()
	var got []int
	for range n {
		got = append(got, await(t, order, "an admission"))
	}
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7}; !slices.Equal(got, want) {
		t.Errorf("admitted in order %v, want %v", got, want)
	}
}

func TestAdmissionBoundsInFlight(t *testing.T) {
	t.Parallel()
	a := NewAdmission(2)
	queued := queuedSignal(a)
	first, _ := a.admit(context.Background())
	second, _ := a.admit(context.Background())
	third := make(chan func(), 1)
	go func() {
		leave, _ := a.admit(context.Background())
		third <- leave
	}()
	await(t, queued, "a waiter in the queue")
	select {
	case <-third:
		t.Fatal("a third execution was admitted while two were in flight")
	default:
	}
	second()
	(<-third)()
	first()
	// Unbounded: never waits.
	u := NewAdmission(0)
	for range 100 {
		if _, err := u.admit(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAdmissionCancelledWaiterLeavesTheQueue(t *testing.T) {
	t.Parallel()
	a := NewAdmission(1)
	queued := queuedSignal(a)
	leave, _ := a.admit(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := a.admit(ctx)
		gaveUp <- err
	}()
	await(t, queued, "a waiter in the queue")
	next := make(chan struct{})
	go func() {
		leave, _ := a.admit(context.Background())
		close(next)
		leave()
	}()
	await(t, queued, "a waiter in the queue")
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter: %v, want context.Canceled", err)
	}
	leave()
	<-next // the slot went to the waiter behind the cancelled one
	if l, _ := a.admit(context.Background()); l == nil {
		t.Error("the slot was lost")
	}
}
