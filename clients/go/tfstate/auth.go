package tfstate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"connectrpc.com/connect"
)

// TokenEnvVar is the environment variable the examples and TokenFromEnv's callers read the
// service's token from by convention.
const TokenEnvVar = "OCI_TFSTATE_TOKEN"

// maxTokenFileBytes bounds what TokenFromFile reads: far more than any API token or JWT.
const maxTokenFileBytes = 64 << 10

// TokenSource returns the token to send with one call: an API token (otfs_...) or a JWT such as a
// CI job's OIDC token. It is called for every unary call and at the start of every stream, so a
// source that fetches a fresh short-lived token (or reads a file that is rotated) is picked up by
// the next call. ctx is the call's context. An error fails the call before anything is sent.
//
// The token must never be part of the error a source returns: the error reaches the caller's logs.
type TokenSource func(ctx context.Context) (string, error)

// StaticToken is a TokenSource that always returns token.
func StaticToken(token string) TokenSource {
	return func(context.Context) (string, error) { return token, nil }
}

// TokenFromEnv is a TokenSource that reads the environment variable name (e.g. TokenEnvVar) for
// every call, without surrounding white space. An unset or empty variable fails the call.
func TokenFromEnv(name string) TokenSource {
	return func(context.Context) (string, error) {
		token := strings.TrimSpace(os.Getenv(name))
		if token == "" {
			return "", fmt.Errorf("the environment variable %s is not set or empty", name)
		}
		return token, nil
	}
}

// TokenFromFile is a TokenSource that reads the file at path for every call, without surrounding
// white space: a token mounted from a secret store and rotated in place (a Kubernetes projected
// service account token, a file a sidecar refreshes) is picked up by the next call. A missing,
// empty or oversized file fails the call.
func TokenFromFile(path string) TokenSource {
	return func(context.Context) (string, error) {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("cannot read the token file: %w", err)
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
		if err != nil {
			return "", fmt.Errorf("cannot read the token file: %w", err)
		}
		if len(data) > maxTokenFileBytes {
			return "", fmt.Errorf("the token file %s is larger than %d bytes", path, maxTokenFileBytes)
		}
		token := strings.TrimSpace(string(data))
		if token == "" {
			return "", fmt.Errorf("the token file %s is empty", path)
		}
		return token, nil
	}
}

// BearerToken returns a client interceptor that sends "Authorization: Bearer <token>" with every
// unary and streaming call. New installs it for WithBearerToken; use it directly with clients built
// from the generated package.
func BearerToken(token string) connect.Interceptor {
	return BearerTokenSource(StaticToken(token))
}

// BearerTokenSource returns a client interceptor that asks source for a token for every unary call
// and at the start of every stream, and sends it as "Authorization: Bearer <token>". When the
// source fails, or returns an empty token or one that cannot be a header value, the call fails with
// CodeUnauthenticated and is never sent; the source's error is wrapped (errors.Is/As reach it).
// New installs it for WithTokenSource.
func BearerTokenSource(source TokenSource) connect.Interceptor {
	return bearerToken{source: source}
}

type bearerToken struct {
	source TokenSource
}

// header returns the Authorization value for one call, or the error that fails it.
func (b bearerToken) header(ctx context.Context) (string, error) {
	if b.source == nil {
		return "", connect.NewError(connect.CodeUnauthenticated, errors.New("tfstate: no token source"))
	}
	token, err := b.source(ctx)
	if err != nil {
		return "", connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("tfstate: the token source failed: %w", err))
	}
	if err := checkToken(token); err != nil {
		return "", connect.NewError(connect.CodeUnauthenticated, err)
	}
	return "Bearer " + token, nil
}

// checkToken refuses what cannot travel as a bearer token, without quoting the token.
func checkToken(token string) error {
	if token == "" {
		return errors.New("tfstate: the token source returned an empty token")
	}
	for i := 0; i < len(token); i++ {
		// Visible ASCII only: API tokens and JWTs are base64url and dots; a space, a control
		// character (CR/LF would split the header) or non-ASCII is a broken token.
		if c := token[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("tfstate: the token holds a character not allowed in a bearer token (byte %d of %d)", i+1, len(token))
		}
	}
	return nil
}

func (b bearerToken) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			value, err := b.header(ctx)
			if err != nil {
				return nil, err
			}
			req.Header().Set("Authorization", value)
		}
		return next(ctx, req)
	}
}

func (b bearerToken) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		value, err := b.header(ctx)
		if err != nil {
			// next is never called: no connection is opened and nothing is sent.
			return newFailedConn(spec, err)
		}
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", value)
		return conn
	}
}

func (b bearerToken) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// String keeps the token out of logs and error messages that print the interceptor.
func (b bearerToken) String() string {
	return "tfstate.BearerToken(<redacted>)"
}

// GoString keeps the token out of %#v, which would otherwise print the source's closure.
func (b bearerToken) GoString() string {
	return b.String()
}

// failedConn is a stream that failed before it started: every read and write returns err.
type failedConn struct {
	spec                                   connect.Spec
	err                                    error
	requestHeader, responseHeader, trailer http.Header
}

func newFailedConn(spec connect.Spec, err error) *failedConn {
	return &failedConn{spec: spec, err: err, requestHeader: http.Header{}, responseHeader: http.Header{}, trailer: http.Header{}}
}

func (c *failedConn) Spec() connect.Spec           { return c.spec }
func (c *failedConn) Peer() connect.Peer           { return connect.Peer{} }
func (c *failedConn) Send(any) error               { return c.err }
func (c *failedConn) RequestHeader() http.Header   { return c.requestHeader }
func (c *failedConn) CloseRequest() error          { return nil }
func (c *failedConn) Receive(any) error            { return c.err }
func (c *failedConn) ResponseHeader() http.Header  { return c.responseHeader }
func (c *failedConn) ResponseTrailer() http.Header { return c.trailer }
func (c *failedConn) CloseResponse() error         { return nil }
