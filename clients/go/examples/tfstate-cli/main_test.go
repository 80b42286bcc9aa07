package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oci-tfstate/oci-tfstate/clients/go/internal/testserver"
)

var serverURL string

func TestMain(m *testing.M) {
	code := 1
	dir, err := os.MkdirTemp("", "oci-tfstate-go-example-")
	if err == nil {
		var service *testserver.Service
		service, err = testserver.StartService(testserver.ServiceOptions{Repository: "oci-layout:" + filepath.Join(dir, "layout")})
		if err == nil {
			serverURL = service.URL
			code = m.Run()
			if stopErr := service.Stop(); stopErr != nil {
				err, code = stopErr, 1
			}
		}
		_ = os.RemoveAll(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "example tests:", err)
	}
	os.Exit(code)
}

func cli(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, append([]string{"-url", serverURL}, args...), strings.NewReader(stdin), &out, "")
	return out.String(), err
}

func TestPutGetLock(t *testing.T) {
	state := `{"version":4,"serial":1,"lineage":"example"}`
	file := filepath.Join(t.TempDir(), "terraform.tfstate")
	if err := os.WriteFile(file, []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := cli(t, "", "put", "example", file)
	if err != nil || !strings.HasPrefix(out, fmt.Sprintf("stored %d bytes as sha256:", len(state))) {
		t.Fatalf("put: %q, %v", out, err)
	}
	if out, err = cli(t, "", "-grpc", "get", "example"); err != nil || out != state {
		t.Fatalf("get: %q, %v; want %q", out, err, state)
	}

	lockID, err := cli(t, "", "lock", "example")
	if err != nil {
		t.Fatal(err)
	}
	lockID = strings.TrimSpace(lockID)
	_, err = cli(t, "{}", "put", "example", "-")
	if err == nil || !strings.Contains(err.Error(), "lock ID "+lockID) {
		t.Fatalf("put on a locked workspace: %v, want the holder's lock ID %s", err, lockID)
	}
	if _, err = cli(t, "", "unlock", "example", lockID); err != nil {
		t.Fatal(err)
	}
	if _, err = cli(t, "{}", "put", "example", "-"); err != nil {
		t.Fatal(err)
	}
}

func TestWatchPrintsLockChanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-url", serverURL, "-grpc", "watch", "watched"}, nil, out, "") }()

	waitFor := func(text string) {
		t.Helper()
		for !strings.Contains(out.String(), text) {
			select {
			case err := <-done:
				t.Fatalf("watch ended before %q: %v\n%s", text, err, out.String())
			case <-ctx.Done():
				t.Fatalf("no %q within the deadline:\n%s", text, out.String())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	waitFor("LOCK_EVENT_KIND_SNAPSHOT_COMPLETE watched")
	lockID, err := cli(t, "", "lock", "watched")
	if err != nil {
		t.Fatal(err)
	}
	waitFor("LOCK_EVENT_KIND_LOCKED watched id=" + strings.TrimSpace(lockID))
	if _, err := cli(t, "", "unlock", "watched", strings.TrimSpace(lockID)); err != nil {
		t.Fatal(err)
	}
	waitFor("LOCK_EVENT_KIND_UNLOCKED watched")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch ended with %v after its context was cancelled", err)
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
