//go:build !linux

package testserver

import "os/exec"

// setParentDeathSignal has no equivalent outside Linux; Stop is the only cleanup there.
func setParentDeathSignal(*exec.Cmd) {}
