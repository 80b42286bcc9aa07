package testserver

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal makes Linux kill the child when the test binary dies, even by SIGKILL
// (when no cleanup code runs), so no registry or server outlives a crashed test.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
