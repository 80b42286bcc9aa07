package tfstate

import (
	"context"

	"connectrpc.com/connect"
)

// BearerToken returns a client interceptor that sends "Authorization: Bearer <token>" with every
// unary and streaming call. New installs it for WithBearerToken; use it directly with clients built
// from the generated package.
func BearerToken(token string) connect.Interceptor {
	return bearerToken{value: "Bearer " + token}
}

type bearerToken struct {
	value string
}

func (b bearerToken) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			req.Header().Set("Authorization", b.value)
		}
		return next(ctx, req)
	}
}

func (b bearerToken) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", b.value)
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
