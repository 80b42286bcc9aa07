package main

import (
	"bufio"
	"encoding/json"
	"io"
	"sync"
)

// output writes messages as JSON lines, whole lines only, from any goroutine.
type output struct {
	mu  sync.Mutex
	buf *bufio.Writer
	enc *json.Encoder
}

func newOutput(w io.Writer) *output {
	buf := bufio.NewWriterSize(w, 64<<10)
	return &output{buf: buf, enc: json.NewEncoder(buf)}
}

// send writes one message. A failed write means the benchmark is gone; stdin closing ends the
// process then, so the error is dropped.
func (o *output) send(m any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.enc.Encode(m) == nil {
		_ = o.buf.Flush()
	}
}

func (o *output) ready(openMs float64) {
	o.send(readyMessage{Type: "ready", OpenMs: openMs})
}

func (o *output) delivered(kind eventKind, lockID string) {
	o.send(deliveredMessage{Type: "delivered", Kind: kind, LockID: lockID})
}

func (o *output) times(lockID string, locked, unlocked delivery) {
	o.send(timesMessage{
		Type:                "times",
		LockID:              lockID,
		Locked:              nonNil(locked.at),
		Unlocked:            nonNil(unlocked.at),
		LockedSinceChange:   nonNil(locked.sinceChange),
		UnlockedSinceChange: nonNil(unlocked.sinceChange),
	})
}

// nonNil keeps an empty list a JSON array, not null.
func nonNil(list []float64) []float64 {
	if list == nil {
		return []float64{}
	}
	return list
}

func (o *output) error(message string) {
	o.send(errorMessage{Type: "error", Message: message})
}
