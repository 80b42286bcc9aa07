// Package tfstate is the Go client of the oci-tfstate service: Terraform and OpenTofu state kept in
// an OCI registry, served over Connect, gRPC and gRPC-Web.
//
// New builds clients for both services of one server:
//
//	c, err := tfstate.New("https://tfstate.example.com", tfstate.WithTokenSource(tfstate.TokenFromEnv(tfstate.TokenEnvVar)))
//	res, err := c.State.GetState(ctx, connect.NewRequest(&tfstatev1.GetStateRequest{Workspace: "default"}))
//
// The request and response types live in the generated package
// github.com/oci-tfstate/oci-tfstate/clients/go/gen/tfstate/v1 (tfstatev1). Errors are
// *connect.Error values; LockHolder and SizeLimit read the typed details the service attaches.
package tfstate

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"connectrpc.com/connect"

	"github.com/oci-tfstate/oci-tfstate/clients/go/gen/tfstate/v1/tfstatev1connect"
)

// Client holds the clients of both services of one oci-tfstate server. Both are safe for
// concurrent use and share one HTTP client.
type Client struct {
	// State reads and writes states, locks workspaces and watches locks.
	State tfstatev1connect.StateServiceClient
	// Workspaces lists, creates and deletes workspaces.
	Workspaces tfstatev1connect.WorkspaceServiceClient
}

// Protocol is the wire protocol a Client speaks. The service answers all three on one port.
type Protocol int

const (
	// ProtocolConnect is the Connect protocol with binary Protobuf: HTTP/1.1 over http://, HTTP/2
	// (negotiated with ALPN) over https://. The default.
	ProtocolConnect Protocol = iota
	// ProtocolGRPC is gRPC: HTTP/2 always, with prior knowledge (h2c) over http://.
	ProtocolGRPC
	// ProtocolGRPCWeb is gRPC-Web, for paths through proxies that only pass HTTP/1.1.
	ProtocolGRPCWeb
)

func (p Protocol) String() string {
	switch p {
	case ProtocolConnect:
		return "connect"
	case ProtocolGRPC:
		return "grpc"
	case ProtocolGRPCWeb:
		return "grpcweb"
	default:
		return fmt.Sprintf("Protocol(%d)", int(p))
	}
}

// Option configures New.
type Option func(*options)

type options struct {
	tls           *tls.Config
	token         string
	tokenSource   TokenSource
	protocol      Protocol
	httpClient    connect.HTTPClient
	clientOptions []connect.ClientOption
}

// WithTLS sets the TLS configuration for an https:// base URL: extra root CAs, a client
// certificate, a server name. Without it the system's roots are trusted. Not allowed with http://.
func WithTLS(config *tls.Config) Option {
	return func(o *options) { o.tls = config }
}

// WithBearerToken sends "Authorization: Bearer <token>" with every call. An empty token sends none.
func WithBearerToken(token string) Option {
	return func(o *options) { o.token = token }
}

// WithTokenSource asks source for a token for every unary call and at the start of every stream,
// and sends it as "Authorization: Bearer <token>": a short-lived OIDC token fetched again, or a
// rotated file (TokenFromFile), reaches the next call. A failing source fails the call with
// CodeUnauthenticated before anything is sent. Not allowed with WithBearerToken.
func WithTokenSource(source TokenSource) Option {
	return func(o *options) { o.tokenSource = source }
}

// WithProtocol selects the wire protocol (default ProtocolConnect).
func WithProtocol(p Protocol) Option {
	return func(o *options) { o.protocol = p }
}

// WithHTTPClient replaces the HTTP client New would build. It must speak the HTTP versions the
// protocol needs (HTTP/2 for gRPC); WithTLS is then not allowed, since the client brings its own.
func WithHTTPClient(client connect.HTTPClient) Option {
	return func(o *options) { o.httpClient = client }
}

// WithClientOptions passes extra options to both generated clients, e.g. connect.WithInterceptors,
// connect.WithSendGzip or connect.WithHTTPGet.
func WithClientOptions(opts ...connect.ClientOption) Option {
	return func(o *options) { o.clientOptions = append(o.clientOptions, opts...) }
}

// New returns clients for the server at baseURL, e.g. "http://127.0.0.1:8080" or
// "https://tfstate.example.com/prefix".
func New(baseURL string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("tfstate: invalid base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("tfstate: base URL %q must start with http:// or https://", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("tfstate: base URL %q has no host", baseURL)
	}
	if o.tls != nil && u.Scheme != "https" {
		return nil, errors.New("tfstate: a TLS configuration needs an https:// base URL")
	}
	if o.tls != nil && o.httpClient != nil {
		return nil, errors.New("tfstate: WithTLS and WithHTTPClient exclude each other; configure TLS on the HTTP client")
	}
	if o.token != "" && o.tokenSource != nil {
		return nil, errors.New("tfstate: WithBearerToken and WithTokenSource exclude each other")
	}
	if o.protocol < ProtocolConnect || o.protocol > ProtocolGRPCWeb {
		return nil, fmt.Errorf("tfstate: unknown protocol %v", o.protocol)
	}

	httpClient := o.httpClient
	if httpClient == nil {
		httpClient = newHTTPClient(o.tls, o.protocol)
	}
	var clientOptions []connect.ClientOption
	switch o.protocol {
	case ProtocolGRPC:
		clientOptions = append(clientOptions, connect.WithGRPC())
	case ProtocolGRPCWeb:
		clientOptions = append(clientOptions, connect.WithGRPCWeb())
	}
	switch {
	case o.tokenSource != nil:
		clientOptions = append(clientOptions, connect.WithInterceptors(BearerTokenSource(o.tokenSource)))
	case o.token != "":
		clientOptions = append(clientOptions, connect.WithInterceptors(BearerToken(o.token)))
	}
	clientOptions = append(clientOptions, o.clientOptions...)

	base := strings.TrimSuffix(u.String(), "/")
	return &Client{
		State:      tfstatev1connect.NewStateServiceClient(httpClient, base, clientOptions...),
		Workspaces: tfstatev1connect.NewWorkspaceServiceClient(httpClient, base, clientOptions...),
	}, nil
}

// newHTTPClient starts from http.DefaultTransport (proxy settings from the environment, dial and
// TLS handshake timeouts) and enables the HTTP versions the protocol needs. gRPC needs HTTP/2, which
// over cleartext means prior knowledge (h2c). No overall timeout: WatchLock streams stay open for
// as long as the caller's context allows.
func newHTTPClient(tlsConfig *tls.Config, protocol Protocol) *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if tlsConfig != nil {
		transport.TLSClientConfig = tlsConfig.Clone()
	}
	var protocols http.Protocols
	protocols.SetHTTP2(true)
	if protocol == ProtocolGRPC {
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP1(true)
	}
	transport.Protocols = &protocols
	transport.ForceAttemptHTTP2 = true
	return &http.Client{Transport: transport}
}
