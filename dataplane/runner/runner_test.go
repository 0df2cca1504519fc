package runner

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestRunNeedsFiles(t *testing.T) {
	err := Run(context.Background(), Config{})
	if err == nil || !strings.Contains(err.Error(), "--files") || !strings.Contains(err.Error(), "--operator-address") {
		t.Fatalf("Run without --files: %v", err)
	}
}

func TestRunFailsOnMissingDirectory(t *testing.T) {
	err := Run(context.Background(), Config{Files: t.TempDir() + "/missing", HTTPAddr: "127.0.0.1:0"})
	if err == nil {
		t.Fatal("Run on a missing directory succeeded")
	}
}

func TestRunServesExampleUntilCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Files: "../../examples/standalone", HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0",
			AdminAddr: "127.0.0.1:0", ShutdownGrace: time.Millisecond, DrainTimeout: time.Second})
	}()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop after its context ended")
	}
}
