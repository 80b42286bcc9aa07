package tfstate_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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
	if s := tfstate.BearerToken("s3cret").(interface{ String() string }).String(); strings.Contains(s, "s3cret") {
		t.Fatalf("the interceptor prints its token: %s", s)
	}
}

func rootsOf(server *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(server.Certificate())
	return pool
}
