// Package testserver starts the real oci-tfstate service (the repository's own src/cli.ts on the
// repository's pinned Node) and a real registry (Debian's docker-registry, CNCF Distribution) for
// the client tests, each on a random loopback port, and stops them by PID.
package testserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
)

// RepoRoot finds the oci-tfstate repository above the working directory (go test runs in the
// package's directory): the first directory holding both package.json and src/cli.ts.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if isFile(filepath.Join(dir, "package.json")) && isFile(filepath.Join(dir, "src", "cli.ts")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testserver: no oci-tfstate repository (package.json with src/cli.ts) above the working directory")
		}
		dir = parent
	}
}

func isFile(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular()
}

// Process is a started child process with its captured output.
type Process struct {
	name   string
	cmd    *exec.Cmd
	output *syncBuffer
	done   chan struct{}
	once   sync.Once
	err    error
}

// Output returns everything the process wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.output.String() }

// Stop sends SIGTERM, waits for the exit (SIGKILL after a timeout) and returns an error when the
// process exited other than cleanly. Safe to call more than once.
func (p *Process) Stop() error {
	p.once.Do(func() {
		select {
		case <-p.done:
			p.err = fmt.Errorf("%s had already exited: %v\n%s", p.name, p.cmd.ProcessState, tail(p.Output()))
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.err = fmt.Errorf("%s did not stop within %v of SIGTERM; killed", p.name, stopTimeout)
			return
		}
		if state := p.cmd.ProcessState; !state.Success() && !terminatedBy(state, syscall.SIGTERM) {
			p.err = fmt.Errorf("%s exited with %v\n%s", p.name, state, tail(p.Output()))
		}
	})
	return p.err
}

func terminatedBy(state *os.ProcessState, sig syscall.Signal) bool {
	ws, ok := state.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

func start(name string, cmd *exec.Cmd) (*Process, error) {
	out := &syncBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Stdin = nil
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, output: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// waitFor polls the process output until match finds what it needs, the process exits, or the
// start timeout passes.
func (p *Process) waitFor(what string, match func(output string) (string, bool)) (string, error) {
	deadline := time.Now().Add(startTimeout)
	for {
		if found, ok := match(p.Output()); ok {
			return found, nil
		}
		select {
		case <-p.done:
			return "", fmt.Errorf("%s exited (%v) before %s:\n%s", p.name, p.cmd.ProcessState, what, tail(p.Output()))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.Stop()
			return "", fmt.Errorf("%s did not report %s within %v:\n%s", p.name, what, startTimeout, tail(p.Output()))
		}
	}
}

// Registry is a running docker-registry.
type Registry struct {
	*Process
	// Host is "127.0.0.1:PORT".
	Host string
	root string
}

var registryListening = regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)

// StartRegistry starts Debian's docker-registry on a random loopback port with deletes enabled,
// storing into a fresh temporary directory.
func StartRegistry() (*Registry, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, fmt.Errorf("docker-registry is not installed (Debian package docker-registry): %w", err)
	}
	root, err := os.MkdirTemp("", "oci-tfstate-go-client-registry-")
	if err != nil {
		return nil, err
	}
	config := map[string]any{
		"version": 0.1,
		// "info" is the lowest level that still prints the "listening on" line with the port.
		"log": map[string]any{"level": "info", "formatter": "text", "accesslog": map[string]any{"disabled": true}},
		"storage": map[string]any{
			"filesystem":  map[string]any{"rootdirectory": filepath.Join(root, "data")},
			"delete":      map[string]any{"enabled": true},
			"maintenance": map[string]any{"uploadpurging": map[string]any{"enabled": false}},
		},
		"http": map[string]any{"addr": "127.0.0.1:0", "secret": "oci-tfstate-go-client-tests"},
	}
	// JSON is YAML, so the registry reads it as its config.yml.
	data, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		return nil, err
	}
	configFile := filepath.Join(root, "config.yml")
	if err := os.WriteFile(configFile, data, 0o600); err != nil {
		_ = os.RemoveAll(root)
		return nil, err
	}
	cmd := exec.Command(bin, "serve", configFile)
	cmd.Dir = root
	p, err := start("docker-registry", cmd)
	if err != nil {
		_ = os.RemoveAll(root)
		return nil, err
	}
	host, err := p.waitFor("its port", func(out string) (string, bool) {
		m := registryListening.FindStringSubmatch(out)
		if m == nil {
			return "", false
		}
		return m[1], true
	})
	if err != nil {
		_ = os.RemoveAll(root)
		return nil, err
	}
	return &Registry{Process: p, Host: host, root: root}, nil
}

// Stop stops the registry and removes its storage.
func (r *Registry) Stop() error {
	err := r.Process.Stop()
	return errors.Join(err, os.RemoveAll(r.root))
}

// ServiceOptions are the flags the service starts with.
type ServiceOptions struct {
	// Repository is "host:port/path" of a registry, or "oci-layout:DIR".
	Repository string
	// PlainHTTP talks plain HTTP to the registry.
	PlainHTTP bool
	// TLSCertFile and TLSKeyFile make the service serve TLS.
	TLSCertFile, TLSKeyFile string
	// MaxVersions is the history kept per workspace (0: none).
	MaxVersions int
	// TokensFile turns identity on: only callers with a token of this file (WriteTokensFile) are
	// served.
	TokensFile string
	// Args are appended to the command line.
	Args []string
}

// Service is a running oci-tfstate server.
type Service struct {
	*Process
	// URL is the base URL the server reported, e.g. "http://127.0.0.1:PORT".
	URL string
}

// StartService runs `node --import tsx src/cli.ts --listen 127.0.0.1:0 ...` from the repository root
// with the repository's pinned Node (node_modules/.bin/node) and waits for its "listening" log line.
func StartService(opts ServiceOptions) (*Service, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	node := filepath.Join(root, "node_modules", ".bin", "node")
	if !isFile(node) {
		if resolved, err := filepath.EvalSymlinks(node); err != nil || !isFile(resolved) {
			return nil, fmt.Errorf("%s is missing: run npm ci in %s", node, root)
		}
	}
	args := []string{"--import", "tsx", "src/cli.ts", "--listen", "127.0.0.1:0", "--repository", opts.Repository,
		"--max-versions", fmt.Sprint(opts.MaxVersions), "--log-level", "info"}
	if opts.PlainHTTP {
		args = append(args, "--plain-http")
	}
	if opts.TLSCertFile != "" {
		args = append(args, "--tls-cert", opts.TLSCertFile, "--tls-key", opts.TLSKeyFile)
	}
	if opts.TokensFile != "" {
		args = append(args, "--tokens-file", opts.TokensFile)
	}
	args = append(args, opts.Args...)
	cmd := exec.Command(node, args...)
	cmd.Dir = root
	// Only the variables the service needs: no OCI_TFSTATE_* or OTEL_* from the caller's shell.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "NO_COLOR=1"}
	p, err := start("oci-tfstate", cmd)
	if err != nil {
		return nil, err
	}
	url, err := p.waitFor(`its "listening" log line`, listeningURL)
	if err != nil {
		return nil, err
	}
	return &Service{Process: p, URL: url}, nil
}

// listeningURL finds the JSON log line {"msg":"listening","url":...}.
func listeningURL(output string) (string, bool) {
	scanner := bufio.NewScanner(strings.NewReader(output))
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		line := scanner.Bytes()
		if !bytes.HasPrefix(line, []byte("{")) || !bytes.HasSuffix(line, []byte("}")) {
			continue
		}
		var record struct {
			Msg string `json:"msg"`
			URL string `json:"url"`
		}
		if json.Unmarshal(line, &record) == nil && record.Msg == "listening" && record.URL != "" {
			return record.URL, true
		}
	}
	return "", false
}

// Stop shuts the service down with SIGTERM, which it must survive with exit status 0.
func (s *Service) Stop() error {
	return s.Process.Stop()
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var _ io.Writer = (*syncBuffer)(nil)

func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}
