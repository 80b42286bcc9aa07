package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	tfstatev1 "github.com/oci-tfstate/oci-tfstate/clients/go/gen/tfstate/v1"
)

// openBatch is how many streams are opened at once, so the server is not handed thousands of calls
// in one burst (as bench/watch-client.ts does).
const openBatch = 500

const maxErrorsReported = 5

type timesKey struct {
	kind   eventKind
	lockID string
}

// watchers holds one process's WatchLock streams and the delivery times they record.
type watchers struct {
	ctx    context.Context
	cancel context.CancelFunc
	out    *output
	clock  monoClock
	// count is how many streams a delivery must reach; set by open before any stream starts.
	count          int
	dials          atomic.Int64
	errorsReported atomic.Int64
	running        sync.WaitGroup

	mu          sync.Mutex
	connections []*connection
	times       map[timesKey]delivery
}

// delivery holds, per stream that got an event, when it did (CLOCK_MONOTONIC ms) and how long after
// the server observed the change (wall clock ms).
type delivery struct {
	at          []float64
	sinceChange []float64
}

func newWatchers(out *output, clock monoClock) *watchers {
	ctx, cancel := context.WithCancel(context.Background())
	return &watchers{ctx: ctx, cancel: cancel, out: out, clock: clock, times: make(map[timesKey]delivery)}
}

// open starts cmd.Watchers streams spread round-robin over cmd.Connections connections, a batch
// at a time, and reports ready once every stream has its snapshot.
func (w *watchers) open(cmd command) {
	started := w.clock.nowMs()
	if err := validateOpen(cmd); err != nil {
		w.out.error(err.Error())
		return
	}
	conns := make([]*connection, cmd.Connections)
	for i := range conns {
		conns[i] = newConnection(cmd.URL, &w.dials)
	}
	w.mu.Lock()
	w.connections = conns
	w.count = cmd.Watchers
	w.mu.Unlock()

	for first := 0; first < cmd.Watchers; first += openBatch {
		batch := min(openBatch, cmd.Watchers-first)
		var live sync.WaitGroup
		live.Add(batch)
		for i := first; i < first+batch; i++ {
			if !w.start(func() { w.watch(conns[i%len(conns)], cmd.Workspace, live.Done) }) {
				return
			}
		}
		live.Wait()
		if w.ctx.Err() != nil {
			return
		}
	}
	w.out.ready(w.clock.nowMs() - started)
	if dials := w.dials.Load(); dials != int64(cmd.Connections) {
		// Not an error for the figures, but they no longer describe the connections asked for.
		fmt.Fprintf(os.Stderr, "watch-go: %d TCP connections dialed for %d HTTP/2 connections asked for\n",
			dials, cmd.Connections)
	}
}

func validateOpen(cmd command) error {
	u, err := url.Parse(cmd.URL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("open: url %q is not an http:// URL (h2c needs cleartext)", cmd.URL)
	}
	if cmd.Connections < 1 {
		return fmt.Errorf("open: connections must be at least 1, not %d", cmd.Connections)
	}
	if cmd.Watchers < 0 {
		return fmt.Errorf("open: watchers must not be negative, not %d", cmd.Watchers)
	}
	return nil
}

// start runs f in a goroutine that shutdown waits for, unless shutdown has begun.
func (w *watchers) start(f func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctx.Err() != nil {
		return false
	}
	w.running.Go(f)
	return true
}

// watch runs one stream until it ends, calling live once when its snapshot is complete. Each event
// is stamped the moment Receive returns it.
func (w *watchers) watch(conn *connection, workspace string, live func()) {
	stream, err := conn.client.WatchLock(w.ctx, connect.NewRequest(&tfstatev1.WatchLockRequest{Workspace: workspace}))
	if err != nil {
		w.fail(err)
		return
	}
	defer stream.Close()
	isLive := false
	for stream.Receive() {
		at := w.clock.nowMs()
		wall := time.Now()
		m := stream.Msg()
		sinceChange := float64(wall.Sub(m.GetObserveTime().AsTime()).Nanoseconds()) / 1e6
		switch m.GetKind() {
		case tfstatev1.LockEventKind_LOCK_EVENT_KIND_SNAPSHOT_COMPLETE:
			if !isLive {
				isLive = true
				live()
			}
		case tfstatev1.LockEventKind_LOCK_EVENT_KIND_LOCKED:
			w.record(kindLocked, m.GetLock().GetId(), at, sinceChange)
		case tfstatev1.LockEventKind_LOCK_EVENT_KIND_UNLOCKED:
			w.record(kindUnlocked, m.GetLock().GetId(), at, sinceChange)
		}
	}
	err = stream.Err()
	if err == nil {
		err = errors.New("the server ended it")
	}
	w.fail(err)
}

// fail reports a stream that ended while the benchmark still needs it, the first few only.
func (w *watchers) fail(err error) {
	if w.ctx.Err() != nil {
		return
	}
	if w.errorsReported.Add(1) <= maxErrorsReported {
		w.out.error("a watch stream failed: " + err.Error())
	}
}

func (w *watchers) record(kind eventKind, lockID string, at, sinceChange float64) {
	key := timesKey{kind, lockID}
	w.mu.Lock()
	d, ok := w.times[key]
	if !ok {
		d = delivery{at: make([]float64, 0, w.count), sinceChange: make([]float64, 0, w.count)}
	}
	d.at = append(d.at, at)
	d.sinceChange = append(d.sinceChange, sinceChange)
	w.times[key] = d
	reached := len(d.at) == w.count
	w.mu.Unlock()
	if reached {
		w.out.delivered(kind, lockID)
	}
}

// collect hands over the times recorded for lockID and forgets them.
func (w *watchers) collect(lockID string) {
	w.mu.Lock()
	locked := w.times[timesKey{kindLocked, lockID}]
	unlocked := w.times[timesKey{kindUnlocked, lockID}]
	delete(w.times, timesKey{kindLocked, lockID})
	delete(w.times, timesKey{kindUnlocked, lockID})
	w.mu.Unlock()
	w.out.times(lockID, locked, unlocked)
}

// shutdown cancels every stream, waits up to grace for them to end, then closes the connections.
func (w *watchers) shutdown(grace time.Duration) {
	w.mu.Lock()
	// Under the lock, so no stream starts after the wait begins.
	w.cancel()
	conns := w.connections
	w.mu.Unlock()
	done := make(chan struct{})
	go func() {
		w.running.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
	}
	for _, c := range conns {
		c.transport.CloseIdleConnections()
	}
}
