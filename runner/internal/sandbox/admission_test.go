package sandbox

import (
	"context"
	"errors"
	"io"
	"log/slog"
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
	first, err := a.admit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	order := make(chan int, n)
	for i := range n {
		go func() {
			slot, err := a.admit(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			slot.Leave()
		}()
		await(t, queued, "a waiter in the queue") // waiter i is in line before waiter i+1 arrives
	}
	first.Leave()
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
	third := make(chan *Slot, 1)
	go func() {
		slot, _ := a.admit(context.Background())
		third <- slot
	}()
	await(t, queued, "a waiter in the queue")
	select {
	case <-third:
		t.Fatal("a third execution was admitted while two were in flight")
	default:
	}
	second.Leave()
	(<-third).Leave()
	first.Leave()
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
	held, _ := a.admit(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := a.admit(ctx)
		gaveUp <- err
	}()
	await(t, queued, "a waiter in the queue")
	next := make(chan struct{})
	go func() {
		slot, _ := a.admit(context.Background())
		close(next)
		slot.Leave()
	}()
	await(t, queued, "a waiter in the queue")
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter: %v, want context.Canceled", err)
	}
	held.Leave()
	<-next // the slot went to the waiter behind the cancelled one
	if l, _ := a.admit(context.Background()); l == nil {
		t.Error("the slot was lost")
	}
}

// Learning the bound (no quota, no MaxInFlight).

// boundSignal sends a's learned bound on the returned channel each time it changes.
func boundSignal(a *Admission) <-chan int {
	ch := make(chan int, 100)
	a.OnBound = func(bound int) { ch <- bound }
	return ch
}

func learning() *Admission {
	return NewLearningAdmission(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// admitNow admits n slots that must not wait: the queue is empty and there is room.
func admitNow(t *testing.T, a *Admission, n int) []*Slot {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a waiter fails at once
	var slots []*Slot
	for i := range n {
		s, err := a.admit(ctx)
		if err != nil {
			t.Fatalf("slot %d was not admitted at once: %v", i, err)
		}
		slots = append(slots, s)
	}
	return slots
}

// waiter starts an execution that must wait in line; its slot arrives on the channel once admitted.
func waiter(t *testing.T, a *Admission, queued <-chan struct{}) <-chan *Slot {
	t.Helper()
	ch := make(chan *Slot, 1)
	go func() {
		s, err := a.admit(context.Background())
		if err != nil {
			t.Error(err)
		}
		ch <- s
	}()
	await(t, queued, "a waiter in the queue")
	return ch
}

// stillWaiting fails the test if w was admitted. The admission hands slots over synchronously
// (in Leave and observe), so a slot not sent by the time they return was not given.
func stillWaiting(t *testing.T, w <-chan *Slot, what string) {
	t.Helper()
	select {
	case <-w:
		t.Fatalf("%s was admitted", what)
	case <-time.After(20 * time.Millisecond):
	}
}

const (
	scheduledNow = iota
	noRoom
	noRoomScaleUp
)

func observe(s *Slot, what int) {
	s.observe(what == scheduledNow, what != scheduledNow, what == noRoomScaleUp)
}

func TestLearnedBoundIsWhatIsScheduledWhenRoomRunsOut(t *testing.T) {
	t.Parallel()
	a := learning()
	queued, bounds := queuedSignal(a), boundSignal(a)
	s := admitNow(t, a, 4) // nothing learned yet: no bound
	if got := a.Limit(); got != 0 {
		t.Fatalf("bound %d before any pod lacked room, want none", got)
	}
	for _, slot := range s[:3] {
		observe(slot, scheduledNow)
	}
	observe(s[3], noRoom)
	if got := await(t, bounds, "the bound to be learned"); got != 3 {
		t.Fatalf("bound %d after the 4th pod lacked room with 3 scheduled, want 3", got)
	}
	w1, w2 := waiter(t, a, queued), waiter(t, a, queued)
	s[0].Leave() // its room goes to the 4th pod, not to a new one
	stillWaiting(t, w1, "the first waiter, while 3 were in flight,")
	observe(s[3], scheduledNow)
	stillWaiting(t, w1, "the first waiter, while 3 were in flight,")
	s[1].Leave()
	w := await(t, w1, "the first waiter")
	stillWaiting(t, w2, "the second waiter, before the first left,")
	if got := a.Limit(); got != 3 {
		t.Errorf("bound %d, want still 3", got)
	}
	for _, slot := range []*Slot{w, s[2], s[3]} {
		slot.Leave()
	}
	await(t, w2, "the second waiter").Leave()
	if n, q := a.InFlight(); n != 0 || q != 0 {
		t.Errorf("%d in flight, %d waiting after all left", n, q)
	}
}

func TestLearningAdmitsNoneWhileOneOfItsPodsWaitsForRoom(t *testing.T) {
	t.Parallel()
	a := learning()
	queued := queuedSignal(a)
	s := admitNow(t, a, 3)
	observe(s[0], scheduledNow)
	observe(s[1], scheduledNow)
	observe(s[2], noRoom) // bound 2
	w := waiter(t, a, queued)
	s[0].Leave()
	s[1].Leave() // 1 in flight under a bound of 2, but the room that frees is the waiting pod's
	stillWaiting(t, w, "a new execution, while a pod waited for room,")
	observe(s[2], scheduledNow)
	await(t, w, "the waiter, once the pod that lacked room was scheduled").Leave()
	s[2].Leave()
}

func TestLearnedBoundGrowsAfterABoundOfRunsWithoutWaitingForRoom(t *testing.T) {
	t.Parallel()
	a := learning()
	queued, bounds := queuedSignal(a), boundSignal(a)
	s := admitNow(t, a, 3)
	observe(s[0], scheduledNow)
	observe(s[1], scheduledNow)
	observe(s[2], noRoom)
	if got := await(t, bounds, "the bound to be learned"); got != 2 {
		t.Fatalf("bound %d, want 2", got)
	}
	w1, w2, w3, w4 := waiter(t, a, queued), waiter(t, a, queued), waiter(t, a, queued), waiter(t, a, queued)
	s[2].Leave() // its start timed out: it waited for room, so it is no sign of more
	stillWaiting(t, w1, "the first waiter, with 2 in flight under a bound of 2,")
	s[0].Leave() // 1 clean run
	first := await(t, w1, "the first waiter")
	observe(first, scheduledNow)
	stillWaiting(t, w2, "the second waiter")
	s[1].Leave() // 2 clean runs: a bound's worth
	if got := await(t, bounds, "the bound to grow"); got != 3 {
		t.Fatalf("bound %d after 2 clean runs under a bound of 2, want 3", got)
	}
	second, third := await(t, w2, "the second waiter"), await(t, w3, "the third waiter")
	stillWaiting(t, w4, "the fourth waiter, with 3 in flight under a bound of 3,")
	for _, slot := range []*Slot{first, second, third} {
		slot.Leave()
	}
	await(t, w4, "the fourth waiter").Leave()
}

func TestLearnedBoundIsNeverBelowWhatRunsAtOnce(t *testing.T) {
	t.Parallel()
	a := learning()
	bounds := boundSignal(a)
	s := admitNow(t, a, 3)
	observe(s[0], scheduledNow)
	observe(s[1], scheduledNow)
	observe(s[2], noRoom)
	await(t, bounds, "the bound to be learned")
	observe(s[2], scheduledNow) // room came: 3 run at once
	if got := await(t, bounds, "the bound to follow what runs"); got != 3 {
		t.Errorf("bound %d with 3 scheduled at once, want 3", got)
	}
}

func TestLearningKeepsOneInFlight(t *testing.T) {
	t.Parallel()
	a := learning()
	queued, bounds := queuedSignal(a), boundSignal(a)
	s := admitNow(t, a, 1)
	observe(s[0], noRoom) // nothing of ours runs: the node is full of others'
	if got := await(t, bounds, "the bound to be learned"); got != 1 {
		t.Fatalf("bound %d with none scheduled, want 1", got)
	}
	w := waiter(t, a, queued)
	stillWaiting(t, w, "a second execution")
	s[0].Leave() // its start timed out
	await(t, w, "the next execution, once the one in flight left").Leave()
}

func TestScaleUpDoesNotShrinkTheLearnedBound(t *testing.T) {
	t.Parallel()
	t.Run("the scale-up is known when the pod lacks room", func(t *testing.T) {
		t.Parallel()
		a := learning()
		s := admitNow(t, a, 2)
		observe(s[0], scheduledNow)
		observe(s[1], noRoomScaleUp)
		if got := a.Limit(); got != 0 {
			t.Errorf("bound %d while a node is being added, want none", got)
		}
		admitNow(t, a, 5) // more still go to the scheduler, and to the autoscaler, as without a bound
	})
	t.Run("the scale-up comes after the pod lacked room", func(t *testing.T) {
		t.Parallel()
		a := learning()
		queued, bounds := queuedSignal(a), boundSignal(a)
		s := admitNow(t, a, 2)
		observe(s[0], noRoom)
		observe(s[1], noRoom)
		if got := await(t, bounds, "the bound to be learned"); got != 1 {
			t.Fatalf("bound %d, want 1", got)
		}
		w := waiter(t, a, queued)
		observe(s[0], noRoomScaleUp)
		stillWaiting(t, w, "a new execution, while another pod lacks room without a scale-up,")
		observe(s[1], noRoomScaleUp)
		if got := await(t, bounds, "the bound to be undone"); got != 0 {
			t.Fatalf("bound %d once a node is being added for both, want none again", got)
		}
		await(t, w, "the waiter, once nodes are being added")
	})
}

func TestFixedBoundIsNotLearned(t *testing.T) {
	t.Parallel()
	a := NewAdmission(3) // set, or from the quota
	s := admitNow(t, a, 2)
	observe(s[0], noRoom)
	observe(s[1], noRoom)
	if got := a.Limit(); got != 3 {
		t.Errorf("bound %d, want the 3 set", got)
	}
	admitNow(t, a, 1)
}
