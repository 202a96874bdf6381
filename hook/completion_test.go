package hook_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/hook"
)

func TestCompletion(t *testing.T) {
	ctx := context.Background()
	if err := hook.NewCompletion().Wait(ctx); err != nil {
		t.Errorf("Wait with no writes: %v", err)
	}

	// A write done before the next is added does not end the wait: NewCompletion's hold.
	c := hook.NewCompletion()
	c.Add()
	c.Done(nil)
	c.Add()
	waited := make(chan error, 1)
	go func() { waited <- c.Wait(ctx) }()
	select {
	case err := <-waited:
		t.Fatalf("Wait returned (%v) with a write pending", err)
	case <-time.After(50 * time.Millisecond):
	}
	bad, worse := errors.New("bad"), errors.New("worse")
	c.Add()
	c.Done(bad)
	c.Done(worse)
	if err := <-waited; err != bad {
		t.Errorf("Wait: %v, want the first failure %v", err, bad)
	}

	// A pending write and a done context: ctx's error, at once.
	c = hook.NewCompletion()
	c.Add()
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := c.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with a write pending past ctx: %v, want DeadlineExceeded", err)
	}

	if hook.CompletionFrom(ctx) != nil {
		t.Error("CompletionFrom(Background) is not nil")
	}
	if got := hook.CompletionFrom(hook.WithCompletion(ctx, c)); got != c {
		t.Errorf("CompletionFrom(WithCompletion(c)) = %p, want %p", got, c)
	}
}
