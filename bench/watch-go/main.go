// Command watch-go is a client process of the watch benchmark (bench/watch.ts): it opens WatchLock
// streams on one workspace with the project's Go client (connect-go, gRPC protocol over h2c),
// spread over several HTTP/2 connections, and stamps each LOCKED and UNLOCKED event with
// CLOCK_MONOTONIC the moment its stream yields it.
//
// It speaks bench/watch-protocol.ts as JSON lines: commands on stdin, messages on stdout. It exits
// on "close" or when stdin closes (the benchmark went away).
//
// Its garbage collector runs between rounds, not during them (see deferGC), unless GOGC or
// GOMEMLIMIT is set.
//
// With BENCH_WATCH_GO_CPU_PROFILE_DIR set, it writes a CPU profile there, cpu-<pid>.pprof, for
// `go tool pprof`.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"time"
)

// closeGrace bounds the wait for the streams to end after "close"; the process exits regardless.
const closeGrace = 5 * time.Second

// maxCommandBytes bounds one command line; commands are small.
const maxCommandBytes = 1 << 20

// gcMemoryLimit is the heap size at which the deferred garbage collector runs after all.
const gcMemoryLimit = 2 << 30

func main() {
	betweenRounds := deferGC(os.Getenv)
	stopProfile, err := startCPUProfile(os.Getenv("BENCH_WATCH_GO_CPU_PROFILE_DIR"))
	if err == nil {
		err = run(os.Stdin, os.Stdout, betweenRounds)
		stopProfile()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "watch-go: %v\n", err)
		os.Exit(1)
	}
}

// run serves the commands on in; with gcBetweenRounds, it collects garbage on each "collect"
// (the benchmark sends it once a round is over) before answering it.
func run(in io.Reader, out io.Writer, gcBetweenRounds bool) error {
	clock, err := newMonoClock()
	if err != nil {
		return fmt.Errorf("cannot read CLOCK_MONOTONIC: %w", err)
	}
	o := newOutput(out)
	w := newWatchers(o, clock)
	defer w.shutdown(closeGrace)

	lines := bufio.NewScanner(in)
	lines.Buffer(make([]byte, 0, 4096), maxCommandBytes)
	opened := false
	for lines.Scan() {
		var cmd command
		if err := json.Unmarshal(lines.Bytes(), &cmd); err != nil {
			o.error(fmt.Sprintf("unreadable command: %v", err))
			continue
		}
		switch cmd.Type {
		case "open":
			if opened {
				o.error("open: the watchers are already open")
				continue
			}
			opened = true
			go w.open(cmd)
		case "collect":
			if gcBetweenRounds {
				runtime.GC()
			}
			w.collect(cmd.LockID)
		case "close":
			return nil
		default:
			o.error(fmt.Sprintf("unknown command type %q", cmd.Type))
		}
	}
	// stdin closed: the benchmark is gone, nothing left to do.
	return lines.Err()
}

// deferGC turns the garbage collector off (up to gcMemoryLimit of heap, as a safety net) so that
// it runs only between rounds, unless the environment sets GOGC or GOMEMLIMIT; it reports whether
// it did. This one process stands in for thousands of clients that would run on as many machines,
// and its collector, working for all of them at once, runs on the CPUs the server under
// measurement shares with it: with Go's default (GOGC=100) a collection now and then landed in a
// round and held that round's deliveries back by tens of milliseconds, which the benchmark counted
// against the server. Between rounds the server is idle.
func deferGC(getenv func(string) string) bool {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return false
	}
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(gcMemoryLimit)
	return true
}

// startCPUProfile profiles the process into dir, unless dir is empty; the returned func ends it.
func startCPUProfile(dir string) (func(), error) {
	if dir == "" {
		return func() {}, nil
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("cpu-%d.pprof", os.Getpid())))
	if err != nil {
		return nil, fmt.Errorf("cannot create the CPU profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cannot start the CPU profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
