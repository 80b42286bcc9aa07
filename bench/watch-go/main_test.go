package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	tfstatev1 "github.com/oci-tfstate/oci-tfstate/clients/go/gen/tfstate/v1"
	"github.com/oci-tfstate/oci-tfstate/clients/go/gen/tfstate/v1/tfstatev1connect"
)

// observedAgo is how long before sending it the test server says it observed each change.
const observedAgo = 40 * time.Millisecond

func TestClockReadsClockMonotonic(t *testing.T) {
	clock, err := newMonoClock()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	for range 100 {
		var ts unix.Timespec
		before := clock.nowMs()
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			t.Fatal(err)
		}
		after := clock.nowMs()
		at := float64(ts.Nano()) / 1e6
		// A tenth of a millisecond of slack for the anchor's own error and a preempted reading.
		if at < before-0.1 || at > after+0.1 {
			t.Fatalf("CLOCK_MONOTONIC %.6f ms lies outside the clock's readings [%.6f, %.6f]", at, before, after)
		}
	}
}

// lockBroker is a WatchLock server for one workspace: every stream gets SNAPSHOT_COMPLETE, then the
// events published after it.
type lockBroker struct {
	tfstatev1connect.UnimplementedStateServiceHandler
	mu   sync.Mutex
	subs map[chan *tfstatev1.WatchLockResponse]struct{}
}

func (b *lockBroker) WatchLock(
	ctx context.Context,
	req *connect.Request[tfstatev1.WatchLockRequest],
	stream *connect.ServerStream[tfstatev1.WatchLockResponse],
) error {
	events := make(chan *tfstatev1.WatchLockResponse, 16)
	b.mu.Lock()
	b.subs[events] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.subs, events)
		b.mu.Unlock()
	}()
	err := stream.Send(&tfstatev1.WatchLockResponse{
		Workspace: req.Msg.GetWorkspace(),
		Kind:      tfstatev1.LockEventKind_LOCK_EVENT_KIND_SNAPSHOT_COMPLETE,
	})
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-events:
			if err := stream.Send(m); err != nil {
				return err
			}
		}
	}
}

func (b *lockBroker) publish(kind tfstatev1.LockEventKind, lockID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for events := range b.subs {
		events <- &tfstatev1.WatchLockResponse{
			Kind:        kind,
			Lock:        &tfstatev1.LockInfo{Id: lockID},
			ObserveTime: timestamppb.New(time.Now().Add(-observedAgo)),
		}
	}
}

// startBroker serves the broker over h2c and counts the TCP connections it accepts.
func startBroker(t *testing.T) (*lockBroker, string, *atomic.Int64) {
	t.Helper()
	broker := &lockBroker{subs: make(map[chan *tfstatev1.WatchLockResponse]struct{})}
	mux := http.NewServeMux()
	mux.Handle(tfstatev1connect.NewStateServiceHandler(broker))
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	var accepted atomic.Int64
	server := &http.Server{
		Handler:   mux,
		Protocols: &protocols,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				accepted.Add(1)
			}
		},
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(func() { _ = server.Close() })
	return broker, "http://" + listener.Addr().String(), &accepted
}

// session drives run() through pipes, as bench/watch.ts drives the process.
type session struct {
	t        *testing.T
	commands io.WriteCloser
	messages *bufio.Scanner
	done     chan error
}

func startSession(t *testing.T) *session {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(inR, outW, true)
		_ = outW.Close()
		done <- err
	}()
	messages := bufio.NewScanner(outR)
	messages.Buffer(nil, 1<<20)
	s := &session{t: t, commands: inW, messages: messages, done: done}
	t.Cleanup(func() { _ = inW.Close() })
	return s
}

func (s *session) send(cmd any) {
	s.t.Helper()
	line, err := json.Marshal(cmd)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.commands.Write(append(line, '\n')); err != nil {
		s.t.Fatal(err)
	}
}

// next reads the next message into a generic map, failing on an "error" message.
func (s *session) next() map[string]any {
	s.t.Helper()
	if !s.messages.Scan() {
		s.t.Fatalf("no message: %v", s.messages.Err())
	}
	var m map[string]any
	if err := json.Unmarshal(s.messages.Bytes(), &m); err != nil {
		s.t.Fatalf("message %q is not JSON: %v", s.messages.Text(), err)
	}
	if m["type"] == "error" {
		s.t.Fatalf("error message: %v", m["message"])
	}
	return m
}

func TestWatchersOverJSONLines(t *testing.T) {
	const watchers, connections = 60, 3
	broker, url, accepted := startBroker(t)
	s := startSession(t)

	s.send(map[string]any{
		"type": "open", "url": url, "workspace": "w", "watchers": watchers, "connections": connections,
	})
	if m := s.next(); m["type"] != "ready" {
		t.Fatalf("got %v, want ready", m)
	} else if openMs, _ := m["openMs"].(float64); openMs <= 0 {
		t.Fatalf("openMs %v is not a positive duration", m["openMs"])
	}
	if n := accepted.Load(); n != connections {
		t.Fatalf("the server accepted %d connections, want %d", n, connections)
	}

	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	published := float64(ts.Nano()) / 1e6
	broker.publish(tfstatev1.LockEventKind_LOCK_EVENT_KIND_LOCKED, "l1")
	if m := s.next(); m["type"] != "delivered" || m["kind"] != "locked" || m["lockId"] != "l1" {
		t.Fatalf("got %v, want locked l1 delivered", m)
	}
	broker.publish(tfstatev1.LockEventKind_LOCK_EVENT_KIND_UNLOCKED, "l1")
	if m := s.next(); m["type"] != "delivered" || m["kind"] != "unlocked" || m["lockId"] != "l1" {
		t.Fatalf("got %v, want unlocked l1 delivered", m)
	}

	// With the collector off, as deferGC leaves it, only the collect command can run one.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	s.send(map[string]any{"type": "collect", "lockId": "l1"})
	m := s.next()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if after.NumGC <= before.NumGC {
		t.Fatalf("no garbage collection ran for the collect command (%d before, %d after)", before.NumGC, after.NumGC)
	}
	if m["type"] != "times" || m["lockId"] != "l1" {
		t.Fatalf("got %v, want times of l1", m)
	}
	locked, _ := m["locked"].([]any)
	unlocked, _ := m["unlocked"].([]any)
	if len(locked) != watchers || len(unlocked) != watchers {
		t.Fatalf("got %d locked and %d unlocked times, want %d each", len(locked), len(unlocked), watchers)
	}
	for _, v := range locked {
		if at, _ := v.(float64); at < published || at > published+5000 {
			t.Fatalf("delivery time %v is not on CLOCK_MONOTONIC after the publish at %v", v, published)
		}
	}
	since, _ := m["lockedSinceChange"].([]any)
	if len(since) != watchers {
		t.Fatalf("got %d times since the change, want %d", len(since), watchers)
	}
	agoMs := float64(observedAgo.Milliseconds())
	for _, v := range since {
		if ms, _ := v.(float64); ms < agoMs || ms > agoMs+5000 {
			t.Fatalf("%v ms since the change; it was observed %v ms before it was sent", v, agoMs)
		}
	}

	// Collected times are forgotten: a second collect hands over empty lists, not null.
	s.send(map[string]any{"type": "collect", "lockId": "l1"})
	if m := s.next(); m["type"] != "times" || m["locked"] == nil || len(m["locked"].([]any)) != 0 {
		t.Fatalf("got %v, want empty times", m)
	}

	s.send(map[string]any{"type": "close"})
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the process did not finish after close")
	}
}

func TestExitsWhenStdinCloses(t *testing.T) {
	_, url, _ := startBroker(t)
	s := startSession(t)
	s.send(map[string]any{"type": "open", "url": url, "workspace": "w", "watchers": 4, "connections": 2})
	if m := s.next(); m["type"] != "ready" {
		t.Fatalf("got %v, want ready", m)
	}
	_ = s.commands.Close()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the process did not finish after stdin closed")
	}
}

func TestReportsABadOpen(t *testing.T) {
	s := startSession(t)
	s.send(map[string]any{"type": "open", "url": "https://x", "workspace": "w", "watchers": 1, "connections": 1})
	if !s.messages.Scan() {
		t.Fatal("no message")
	}
	var m errorMessage
	if err := json.Unmarshal(s.messages.Bytes(), &m); err != nil || m.Type != "error" || m.Message == "" {
		t.Fatalf("got %q, want an error message", s.messages.Text())
	}
}

func TestDeferGCTurnsTheCollectorOffUnlessTheEnvironmentSaysOtherwise(t *testing.T) {
	before := debug.SetGCPercent(100)
	beforeLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(before)
		debug.SetMemoryLimit(beforeLimit)
	})

	env := map[string]string{"GOMEMLIMIT": "512MiB"}
	if deferGC(func(k string) string { return env[k] }) {
		t.Fatal("deferGC overrode GOMEMLIMIT")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d after a refused deferGC, want 100", got)
	}

	if !deferGC(func(string) string { return "" }) {
		t.Fatal("deferGC did nothing with neither GOGC nor GOMEMLIMIT set")
	}
	if got := debug.SetGCPercent(100); got != -1 {
		t.Fatalf("GC percent %d, want -1 (off)", got)
	}
	if got := debug.SetMemoryLimit(-1); got != gcMemoryLimit {
		t.Fatalf("memory limit %d, want %d", got, gcMemoryLimit)
	}
}
