package tfstate_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	tfstatev1 "github.com/oci-tfstate/oci-tfstate/clients/go/gen/tfstate/v1"
	"github.com/oci-tfstate/oci-tfstate/clients/go/tfstate"
)

// The identity-enabled service (--tokens-file, see TestMain) over every protocol the Go client
// speaks, each reached over TLS.
var identityProtocols = []tfstate.Protocol{tfstate.ProtocolConnect, tfstate.ProtocolGRPC, tfstate.ProtocolGRPCWeb}

// eachIdentityProtocol runs fn as a parallel subtest per protocol; newClient builds a client of
// the identity-enabled service with the given extra options.
func eachIdentityProtocol(t *testing.T, fn func(t *testing.T, newClient func(...tfstate.Option) *tfstate.Client)) {
	t.Helper()
	if identity.url == "" {
		t.Fatal("TestMain did not start the identity-enabled service")
	}
	for _, p := range identityProtocols {
		t.Run(p.String(), func(t *testing.T) {
			t.Parallel()
			fn(t, func(opts ...tfstate.Option) *tfstate.Client {
				t.Helper()
				c, err := tfstate.New(identity.url, append([]tfstate.Option{
					tfstate.WithTLS(identity.tlsConfig), tfstate.WithProtocol(p),
				}, opts...)...)
				if err != nil {
					t.Fatal(err)
				}
				return c
			})
		})
	}
}

// unauthenticated checks that err is the service's UNAUTHENTICATED and quotes none of the secrets.
func unauthenticated(t *testing.T, err error) {
	t.Helper()
	wantCode(t, err, connect.CodeUnauthenticated)
	for _, secret := range []string{identity.token, identity.rotated, identity.unknown} {
		if strings.Contains(err.Error(), secret) {
			t.Fatalf("the error quotes a token: %v", err)
		}
	}
}

func listWorkspaces(ctx context.Context, c *tfstate.Client) error {
	_, err := c.Workspaces.ListWorkspaces(ctx, connect.NewRequest(&tfstatev1.ListWorkspacesRequest{}))
	return err
}

// watchFirst opens WatchLock on workspace and returns its first message, or the stream's error.
func watchFirst(ctx context.Context, c *tfstate.Client, workspace string) (*tfstatev1.WatchLockResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.State.WatchLock(ctx, connect.NewRequest(&tfstatev1.WatchLockRequest{Workspace: workspace}))
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	if !stream.Receive() {
		return nil, stream.Err()
	}
	return stream.Msg(), nil
}

func TestIdentityServesTheRightToken(t *testing.T) {
	eachIdentityProtocol(t, func(t *testing.T, newClient func(...tfstate.Option) *tfstate.Client) {
		ctx := testContext(t)
		c := newClient(tfstate.WithBearerToken(identity.token))
		name := workspaceName("identity")
		state := stateBytes(1, name)
		put(ctx, t, c, name, state, "")
		got, err := c.State.GetState(ctx, connect.NewRequest(&tfstatev1.GetStateRequest{Workspace: name}))
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Msg.GetState()) != string(state) {
			t.Fatalf("GetState = %q, want %q", got.Msg.GetState(), state)
		}
		msg, err := watchFirst(ctx, c, name)
		if err != nil {
			t.Fatalf("WatchLock with the right token: %v", err)
		}
		if msg.GetKind() != tfstatev1.LockEventKind_LOCK_EVENT_KIND_SNAPSHOT || msg.GetWorkspace() != name {
			t.Fatalf("WatchLock's first message = %v, want the snapshot of %s", msg, name)
		}
	})
}

func TestIdentityRefusesMissingAndWrongTokens(t *testing.T) {
	eachIdentityProtocol(t, func(t *testing.T, newClient func(...tfstate.Option) *tfstate.Client) {
		ctx := testContext(t)
		for name, opts := range map[string][]tfstate.Option{
			"no token":            nil,
			"unknown token":       {tfstate.WithBearerToken(identity.unknown)},
			"not a token at all":  {tfstate.WithBearerToken("junk")},
			"a token's prefix":    {tfstate.WithBearerToken(identity.token[:len(identity.token)-1])},
			"a JWT-shaped string": {tfstate.WithBearerToken("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")},
		} {
			c := newClient(opts...)
			if err := listWorkspaces(ctx, c); err == nil {
				t.Fatalf("%s: ListWorkspaces succeeded", name)
			} else {
				unauthenticated(t, err)
			}
			_, err := c.State.GetState(ctx, connect.NewRequest(&tfstatev1.GetStateRequest{Workspace: "default"}))
			unauthenticated(t, err)
			_, err = watchFirst(ctx, c, "default")
			unauthenticated(t, err)
			// Watching every workspace is refused as well, not filtered to nothing.
			_, err = watchFirst(ctx, c, "")
			unauthenticated(t, err)
		}
	})
}

func TestIdentityTokenSourceIsAskedForEveryCall(t *testing.T) {
	eachIdentityProtocol(t, func(t *testing.T, newClient func(...tfstate.Option) *tfstate.Client) {
		ctx := testContext(t)
		// Good, good (the stream's start), then a token the service does not know.
		tokens := []string{identity.token, identity.rotated, identity.unknown}
		var calls atomic.Int32
		c := newClient(tfstate.WithTokenSource(func(context.Context) (string, error) {
			n := int(calls.Add(1))
			return tokens[min(n, len(tokens))-1], nil
		}))
		if err := listWorkspaces(ctx, c); err != nil {
			t.Fatalf("first call, with the right token: %v", err)
		}
		if _, err := watchFirst(ctx, c, "default"); err != nil {
			t.Fatalf("WatchLock, with the second right token: %v", err)
		}
		unauthenticated(t, listWorkspaces(ctx, c))
		if n := calls.Load(); n != 3 {
			t.Fatalf("the token source was asked %d times for 3 calls", n)
		}
	})
}

func TestIdentityTokenFromRotatedFile(t *testing.T) {
	eachIdentityProtocol(t, func(t *testing.T, newClient func(...tfstate.Option) *tfstate.Client) {
		ctx := testContext(t)
		file := filepath.Join(t.TempDir(), "token")
		write := func(token string) {
			t.Helper()
			// Replaced by a rename, as secret mounts and sidecars do.
			tmp := file + ".new"
			if err := os.WriteFile(tmp, []byte(token+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, file); err != nil {
				t.Fatal(err)
			}
		}
		c := newClient(tfstate.WithTokenSource(tfstate.TokenFromFile(file)))

		write(identity.token)
		if err := listWorkspaces(ctx, c); err != nil {
			t.Fatalf("with the first token: %v", err)
		}
		write(identity.rotated)
		if _, err := watchFirst(ctx, c, "default"); err != nil {
			t.Fatalf("WatchLock after the rotation: %v", err)
		}
		write(identity.unknown)
		unauthenticated(t, listWorkspaces(ctx, c))
		_, err := watchFirst(ctx, c, "default")
		unauthenticated(t, err)
	})
}
