package tfstate_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	tfstatev1 "github.com/oci-tfstate/oci-tfstate/clients/go/gen/tfstate/v1"
	"github.com/oci-tfstate/oci-tfstate/clients/go/gen/tfstate/v1/tfstatev1connect"
	"github.com/oci-tfstate/oci-tfstate/clients/go/tfstate"
)

// recordingHandler is a StateService that records the Authorization header and protocol of every
// call, answers GetState, streams one WatchLock message, and refuses Lock with a LockHeldDetail.
type recordingHandler struct {
	tfstatev1connect.UnimplementedStateServiceHandler
	mu    sync.Mutex
	calls []recordedCall
}

type recordedCall struct {
	procedure, protocol, authorization string
}

func (h *recordingHandler) record(spec connect.Spec, peer connect.Peer, header http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, recordedCall{spec.Procedure, peer.Protocol, header.Get("Authorization")})
}

func (h *recordingHandler) recorded() []recordedCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]recordedCall(nil), h.calls...)
}

func (h *recordingHandler) GetState(_ context.Context, req *connect.Request[tfstatev1.GetStateRequest]) (*connect.Response[tfstatev1.GetStateResponse], error) {
	h.record(req.Spec(), req.Peer(), req.Header())
	return connect.NewResponse(&tfstatev1.GetStateResponse{State: []byte("{}")}), nil
}

func (h *recordingHandler) WatchLock(_ context.Context, req *connect.Request[tfstatev1.WatchLockRequest], stream *connect.ServerStream[tfstatev1.WatchLockResponse]) error {
	h.record(req.Spec(), req.Peer(), req.Header())
	return stream.Send(&tfstatev1.WatchLockResponse{Workspace: req.Msg.GetWorkspace(), Kind: tfstatev1.LockEventKind_LOCK_EVENT_KIND_SNAPSHOT})
}

func (h *recordingHandler) Lock(_ context.Context, req *connect.Request[tfstatev1.LockRequest]) (*connect.Response[tfstatev1.LockResponse], error) {
	h.record(req.Spec(), req.Peer(), req.Header())
	err := connect.NewError(connect.CodeFailedPrecondition, errors.New("the workspace is locked"))
	detail, detailErr := connect.NewErrorDetail(&tfstatev1.LockHeldDetail{
		Holder:     &tfstatev1.LockInfo{Id: "holder-id", Who: "alice@ci", Created: timestamppb.Now()},
		Generation: 7,
	})
	if detailErr != nil {
		return nil, detailErr
	}
	err.AddDetail(detail)
	return nil, err
}

// startRecordingServer serves the handler over cleartext HTTP/1.1 and h2c, or over TLS.
func startRecordingServer(t *testing.T, useTLS bool) (*recordingHandler, *httptest.Server) {
	t.Helper()
	handler := &recordingHandler{}
	mux := http.NewServeMux()
	mux.Handle(tfstatev1connect.NewStateServiceHandler(handler))
	server := httptest.NewUnstartedServer(mux)
	if useTLS {
		server.EnableHTTP2 = true
		server.StartTLS()
	} else {
		var protocols http.Protocols
		protocols.SetHTTP1(true)
		protocols.SetUnencryptedHTTP2(true)
		server.Config.Protocols = &protocols
		server.Start()
	}
	t.Cleanup(server.Close)
	return handler, server
}

func TestBearerTokenOnEveryCall(t *testing.T) {
	for _, tc := range []struct {
		name     string
		useTLS   bool
		protocol tfstate.Protocol
		wire     string
	}{
		{"connect over http", false, tfstate.ProtocolConnect, connect.ProtocolConnect},
		{"grpc over h2c", false, tfstate.ProtocolGRPC, connect.ProtocolGRPC},
		{"grpc-web over http", false, tfstate.ProtocolGRPCWeb, connect.ProtocolGRPCWeb},
		{"connect over tls", true, tfstate.ProtocolConnect, connect.ProtocolConnect},
		{"grpc over tls", true, tfstate.ProtocolGRPC, connect.ProtocolGRPC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			handler, server := startRecordingServer(t, tc.useTLS)
			opts := []tfstate.Option{tfstate.WithBearerToken("s3cret"), tfstate.WithProtocol(tc.protocol)}
			if tc.useTLS {
				opts = append(opts, tfstate.WithTLS(&tls.Config{RootCAs: rootsOf(server), MinVersion: tls.VersionTLS12}))
			}
			c, err := tfstate.New(server.URL, opts...)
			if err != nil {
				t.Fatal(err)
			}
			ctx := testContext(t)
			if _, err := c.State.GetState(ctx, connect.NewRequest(&tfstatev1.GetStateRequest{Workspace: "default"})); err != nil {
				t.Fatal(err)
			}
			stream, err := c.State.WatchLock(ctx, connect.NewRequest(&tfstatev1.WatchLockRequest{Workspace: "default"}))
			if err != nil {
				t.Fatal(err)
			}
			if !stream.Receive() {
				t.Fatalf("WatchLock sent nothing: %v", stream.Err())
			}
			_ = stream.Close()

			_, err = c.State.Lock(ctx, connect.NewRequest(&tfstatev1.LockRequest{Workspace: "default"}))
			wantCode(t, err, connect.CodeFailedPrecondition)
			detail, ok := tfstate.LockHolder(err)
			if !ok || detail.GetHolder().GetWho() != "alice@ci" || detail.GetGeneration() != 7 {
				t.Fatalf("LockHolder = %v, %v", detail, ok)
			}

			calls := handler.recorded()
			if len(calls) != 3 {
				t.Fatalf("the server saw %d calls, want 3", len(calls))
			}
			for _, call := range calls {
				if call.authorization != "Bearer s3cret" || call.protocol != tc.wire {
					t.Errorf("%s arrived over %s with Authorization %q, want %s with the bearer token",
						call.procedure, call.protocol, call.authorization, tc.wire)
				}
			}
		})
	}
}

func TestNoAuthorizationWithoutToken(t *testing.T) {
	handler, server := startRecordingServer(t, false)
	c, err := tfstate.New(server.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.State.GetState(testContext(t), connect.NewRequest(&tfstatev1.GetStateRequest{Workspace: "default"})); err != nil {
		t.Fatal(err)
	}
	if calls := handler.recorded(); len(calls) != 1 || calls[0].authorization != "" {
		t.Fatalf("calls = %+v, want one without Authorization", calls)
	}
}

func TestLockHolderIgnoresOtherErrors(t *testing.T) {
	if _, ok := tfstate.LockHolder(errors.New("plain")); ok {
		t.Fatal("a plain error has a lock holder")
	}
	if _, ok := tfstate.LockHolder(connect.NewError(connect.CodeFailedPrecondition, errors.New("no detail"))); ok {
		t.Fatal("an error without details has a lock holder")
	}
	if _, ok := tfstate.LockHolder(nil); ok {
		t.Fatal("nil has a lock holder")
	}
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		opts      []tfstate.Option
		want      string
	}{
		{"no scheme", "127.0.0.1:8080", nil, "base URL"},
		{"other scheme", "ftp://host", nil, "http:// or https://"},
		{"no host", "http://", nil, "no host"},
		{"tls on http", "http://127.0.0.1:8080", []tfstate.Option{tfstate.WithTLS(&tls.Config{})}, "https://"},
		{"tls and http client", "https://h", []tfstate.Option{tfstate.WithTLS(&tls.Config{}), tfstate.WithHTTPClient(http.DefaultClient)}, "exclude"},
		{"unknown protocol", "http://h", []tfstate.Option{tfstate.WithProtocol(tfstate.Protocol(9))}, "unknown protocol"},
		{"token and token source", "http://h", []tfstate.Option{
			tfstate.WithBearerToken("t"), tfstate.WithTokenSource(tfstate.StaticToken("t")),
		}, "exclude"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tfstate.New(tc.url, tc.opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%q) = %v, want an error mentioning %q", tc.url, err, tc.want)
			}
		})
	}
}

func TestTokenIsNotPrinted(t *testing.T) {
	for _, interceptor := range []connect.Interceptor{
		tfstate.BearerToken("s3cret"),
		tfstate.BearerTokenSource(tfstate.StaticToken("s3cret")),
	} {
		if s := fmt.Sprintf("%v %+v %#v %s", interceptor, interceptor, interceptor, interceptor); strings.Contains(s, "s3cret") {
			t.Fatalf("the interceptor prints its token: %s", s)
		}
	}
}

type ctxKey struct{}

func TestTokenSourceAskedForEveryCall(t *testing.T) {
	for _, tc := range []struct {
		name     string
		useTLS   bool
		protocol tfstate.Protocol
	}{
		{"connect over http", false, tfstate.ProtocolConnect},
		{"grpc over h2c", false, tfstate.ProtocolGRPC},
		{"grpc-web over http", false, tfstate.ProtocolGRPCWeb},
		{"grpc over tls", true, tfstate.ProtocolGRPC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			handler, server := startRecordingServer(t, tc.useTLS)
			var calls atomic.Int32
			var sawCallContext atomic.Bool
			source := func(ctx context.Context) (string, error) {
				if ctx.Value(ctxKey{}) == "call" {
					sawCallContext.Store(true)
				}
				return fmt.Sprintf("token-%d", calls.Add(1)), nil
			}
			opts := []tfstate.Option{tfstate.WithTokenSource(source), tfstate.WithProtocol(tc.protocol)}
			if tc.useTLS {
				opts = append(opts, tfstate.WithTLS(&tls.Config{RootCAs: rootsOf(server), MinVersion: tls.VersionTLS12}))
			}
			c, err := tfstate.New(server.URL, opts...)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.WithValue(testContext(t), ctxKey{}, "call")
			if _, err := c.State.GetState(ctx, connect.NewRequest(&tfstatev1.GetStateRequest{Workspace: "default"})); err != nil {
				t.Fatal(err)
			}
			stream, err := c.State.WatchLock(ctx, connect.NewRequest(&tfstatev1.WatchLockRequest{Workspace: "default"}))
			if err != nil {
				t.Fatal(err)
			}
			if !stream.Receive() {
				t.Fatalf("WatchLock sent nothing: %v", stream.Err())
			}
			_ = stream.Close()
			_, err = c.State.Lock(ctx, connect.NewRequest(&tfstatev1.LockRequest{Workspace: "default"}))
			wantCode(t, err, connect.CodeFailedPrecondition)

			var got []string
			for _, call := range handler.recorded() {
				got = append(got, call.procedure+" "+call.authorization)
			}
			want := []string{
				"/tfstate.v1.StateService/GetState Bearer token-1",
				"/tfstate.v1.StateService/WatchLock Bearer token-2",
				"/tfstate.v1.StateService/Lock Bearer token-3",
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("the server saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if !sawCallContext.Load() {
				t.Fatal("the token source was not given the call's context")
			}
		})
	}
}

func TestTokenSourceFailureSendsNothing(t *testing.T) {
	cause := errors.New("the identity provider is down")
	for _, tc := range []struct {
		name   string
		source tfstate.TokenSource
		want   string
	}{
		{"an error", func(context.Context) (string, error) { return "", cause }, "the token source failed: the identity provider is down"},
		{"an empty token", tfstate.StaticToken(""), "empty token"},
		{"a token with a line break", tfstate.StaticToken("s3cret\r\nX-Injected: 1"), "character not allowed"},
		{"a token with a space", tfstate.StaticToken("s3cret s3cret"), "character not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, protocol := range []tfstate.Protocol{tfstate.ProtocolConnect, tfstate.ProtocolGRPC, tfstate.ProtocolGRPCWeb} {
				handler, server := startRecordingServer(t, false)
				c, err := tfstate.New(server.URL, tfstate.WithTokenSource(tc.source), tfstate.WithProtocol(protocol))
				if err != nil {
					t.Fatal(err)
				}
				ctx := testContext(t)
				_, unaryErr := c.State.GetState(ctx, connect.NewRequest(&tfstatev1.GetStateRequest{Workspace: "default"}))
				streamErr := func() error {
					stream, err := c.State.WatchLock(ctx, connect.NewRequest(&tfstatev1.WatchLockRequest{Workspace: "default"}))
					if err != nil {
						return err
					}
					defer stream.Close()
					if stream.Receive() {
						t.Fatalf("%v: WatchLock received a message without a token", protocol)
					}
					return stream.Err()
				}()
				for _, err := range []error{unaryErr, streamErr} {
					wantCode(t, err, connect.CodeUnauthenticated)
					if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
						t.Fatalf("%v: error %q, want one saying %q without the token", protocol, err, tc.want)
					}
					if tc.name == "an error" {
						if !errors.Is(err, cause) {
							t.Fatalf("%v: the error does not wrap the source's: %v", protocol, err)
						}
					}
				}
				if calls := handler.recorded(); len(calls) != 0 {
					t.Fatalf("%v: the server saw %+v, want no call without credentials", protocol, calls)
				}
			}
		})
	}
}

func TestTokenFromEnv(t *testing.T) {
	ctx := context.Background()
	source := tfstate.TokenFromEnv("OCI_TFSTATE_TEST_TOKEN")
	t.Setenv("OCI_TFSTATE_TEST_TOKEN", " first\n")
	if got, err := source(ctx); err != nil || got != "first" {
		t.Fatalf("TokenFromEnv = %q, %v; want first", got, err)
	}
	// Read again on every call.
	t.Setenv("OCI_TFSTATE_TEST_TOKEN", "second")
	if got, err := source(ctx); err != nil || got != "second" {
		t.Fatalf("TokenFromEnv = %q, %v; want second", got, err)
	}
	t.Setenv("OCI_TFSTATE_TEST_TOKEN", "")
	if _, err := source(ctx); err == nil || !strings.Contains(err.Error(), "OCI_TFSTATE_TEST_TOKEN is not set") {
		t.Fatalf("TokenFromEnv with the variable empty: %v", err)
	}
}

func TestTokenFromFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	source := tfstate.TokenFromFile(file)
	if _, err := source(ctx); err == nil || !strings.Contains(err.Error(), "cannot read the token file") {
		t.Fatalf("TokenFromFile with no file: %v", err)
	}
	for _, tc := range []struct{ content, want string }{{"s3cret-1\n", "s3cret-1"}, {"s3cret-2", "s3cret-2"}} {
		if err := os.WriteFile(file, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := source(ctx); err != nil || got != tc.want {
			t.Fatalf("TokenFromFile = %q, %v; want %q", got, err, tc.want)
		}
	}
	if err := os.WriteFile(file, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := source(ctx); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("TokenFromFile with an empty file: %v", err)
	}
	if err := os.WriteFile(file, []byte("s3cret"+strings.Repeat("x", 70<<10)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := source(ctx); err == nil || !strings.Contains(err.Error(), "larger than") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("TokenFromFile with a huge file: %v", err)
	}
}

func rootsOf(server *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(server.Certificate())
	return pool
}
