package tfstate_test

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/oci-tfstate/oci-tfstate/clients/go/internal/testserver"
	"github.com/oci-tfstate/oci-tfstate/clients/go/tfstate"
)

// target is one way of reaching a running service: a server and the client options for it.
type target struct {
	name string
	url  string
	opts []tfstate.Option
}

// targets are filled by TestMain: the service on a real registry over cleartext with no identity
// (anonymous callers, no token sent), and the service on an OCI layout directory over TLS with
// identity on (--tokens-file; every call carries a token), each spoken to with Connect and gRPC.
var targets []target

// certPool trusts the TLS server's certificate.
var certPool *x509.CertPool

// identity is the identity-enabled service (the one over TLS) and the tokens its file holds.
var identity struct {
	url       string
	tlsConfig *tls.Config
	// token and rotated are both in the tokens file; unknown has the right shape but is not.
	token, rotated, unknown string
}

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client tests:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func run(m *testing.M) (code int, err error) {
	tmp, err := os.MkdirTemp("", "oci-tfstate-go-client-")
	if err != nil {
		return 1, err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(tmp)) }()
	cert, err := testserver.SelfSignedCertificate(tmp)
	if err != nil {
		return 1, err
	}
	certPool = cert.Pool
	identity.token, identity.rotated, identity.unknown = testserver.NewSecret(), testserver.NewSecret(), testserver.NewSecret()
	tokensFile, err := testserver.WriteTokensFile(tmp,
		testserver.TokenEntry{Name: "go-client-tests", Secret: identity.token},
		testserver.TokenEntry{Name: "go-client-tests-rotated", Secret: identity.rotated})
	if err != nil {
		return 1, err
	}

	// The registry-backed and the layout-backed service start side by side.
	var (
		wg                     sync.WaitGroup
		registry               *testserver.Registry
		onRegistry, onLayout   *testserver.Service
		registryErr, layoutErr error
		stopMu                 sync.Mutex
		stops                  []func() error
	)
	addStop := func(stop func() error) {
		stopMu.Lock()
		defer stopMu.Unlock()
		stops = append(stops, stop)
	}
	defer func() {
		// Services before the registry they use.
		for i := len(stops) - 1; i >= 0; i-- {
			err = errors.Join(err, stops[i]())
		}
	}()
	wg.Add(2)
	go func() {
		defer wg.Done()
		if registry, registryErr = testserver.StartRegistry(); registryErr != nil {
			return
		}
		addStop(registry.Stop)
		onRegistry, registryErr = testserver.StartService(testserver.ServiceOptions{
			Repository:  registry.Host + "/tfstate/go-client-" + randomSuffix(),
			PlainHTTP:   true,
			MaxVersions: 10,
		})
		if registryErr == nil {
			addStop(onRegistry.Stop)
		}
	}()
	go func() {
		defer wg.Done()
		onLayout, layoutErr = testserver.StartService(testserver.ServiceOptions{
			Repository:  "oci-layout:" + filepath.Join(tmp, "layout"),
			TLSCertFile: cert.CertFile,
			TLSKeyFile:  cert.KeyFile,
			MaxVersions: 10,
			TokensFile:  tokensFile,
		})
		if layoutErr == nil {
			addStop(onLayout.Stop)
		}
	}()
	wg.Wait()
	if err := errors.Join(registryErr, layoutErr); err != nil {
		return 1, err
	}

	tlsConfig := &tls.Config{RootCAs: cert.Pool, MinVersion: tls.VersionTLS12}
	identity.url, identity.tlsConfig = onLayout.URL, tlsConfig
	withToken := tfstate.WithBearerToken(identity.token)
	targets = []target{
		{"registry/connect", onRegistry.URL, []tfstate.Option{tfstate.WithProtocol(tfstate.ProtocolConnect)}},
		{"registry/grpc", onRegistry.URL, []tfstate.Option{tfstate.WithProtocol(tfstate.ProtocolGRPC)}},
		{"oci-layout+tls+token/connect", onLayout.URL, []tfstate.Option{tfstate.WithTLS(tlsConfig), withToken}},
		{"oci-layout+tls+token/grpc", onLayout.URL, []tfstate.Option{
			tfstate.WithTLS(tlsConfig), tfstate.WithProtocol(tfstate.ProtocolGRPC), withToken,
		}},
	}
	return m.Run(), nil
}

// eachTarget runs fn as a parallel subtest per target, with a fresh client.
func eachTarget(t *testing.T, fn func(t *testing.T, c *tfstate.Client)) {
	t.Helper()
	if len(targets) == 0 {
		t.Fatal("no targets: TestMain did not start the services")
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			c, err := tfstate.New(tg.url, tg.opts...)
			if err != nil {
				t.Fatal(err)
			}
			fn(t, c)
		})
	}
}

func randomSuffix() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// workspaceName returns a name no other test uses.
func workspaceName(prefix string) string {
	return prefix + "-" + randomSuffix()
}
