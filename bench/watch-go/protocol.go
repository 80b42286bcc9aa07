package main

// The JSON-lines form of bench/watch-protocol.ts: one command per line on stdin, one message per
// line on stdout. Field names and shapes match the TypeScript types exactly.

// command is any of OpenCommand, {type:"collect"} and {type:"close"}.
type command struct {
	Type string `json:"type"`
	// open
	URL         string `json:"url"`
	Workspace   string `json:"workspace"`
	Watchers    int    `json:"watchers"`
	Connections int    `json:"connections"`
	// collect
	LockID string `json:"lockId"`
}

type eventKind string

const (
	kindLocked   eventKind = "locked"
	kindUnlocked eventKind = "unlocked"
)

type readyMessage struct {
	Type   string  `json:"type"`
	OpenMs float64 `json:"openMs"`
}

type deliveredMessage struct {
	Type   string    `json:"type"`
	Kind   eventKind `json:"kind"`
	LockID string    `json:"lockId"`
}

type timesMessage struct {
	Type     string    `json:"type"`
	LockID   string    `json:"lockId"`
	Locked   []float64 `json:"locked"`
	Unlocked []float64 `json:"unlocked"`
	// Milliseconds from the event's observe_time (when the server saw the change) to its delivery,
	// by the wall clock both processes share.
	LockedSinceChange   []float64 `json:"lockedSinceChange"`
	UnlockedSinceChange []float64 `json:"unlockedSinceChange"`
}

type errorMessage struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}
