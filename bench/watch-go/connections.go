package main

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"

	"connectrpc.com/connect"

	"github.com/oci-tfstate/oci-tfstate/clients/go/gen/tfstate/v1/tfstatev1connect"
)

// connection is one HTTP/2 connection (h2c, prior knowledge) and the gRPC client that uses it.
type connection struct {
	client    tfstatev1connect.StateServiceClient
	transport *http.Transport
}

// newConnection gives the client its own Transport, so its calls share one TCP connection. Go
// would open another connection when the server's stream limit is reached (or when calls race the
// first dial); StrictMaxConcurrentRequests makes calls wait for a stream instead, and
// MaxConnsPerHost keeps the first calls from dialing in parallel. dials counts what was dialed, so a
// run can check it got the connections it asked for.
func newConnection(baseURL string, dials *atomic.Int64) *connection {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	dialer := &net.Dialer{}
	transport := &http.Transport{
		Protocols:       &protocols,
		HTTP2:           &http.HTTP2Config{StrictMaxConcurrentRequests: true},
		MaxConnsPerHost: 1,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
	}
	// No client timeout: watch streams stay open until the benchmark closes them.
	httpClient := &http.Client{Transport: transport}
	return &connection{
		client:    tfstatev1connect.NewStateServiceClient(httpClient, baseURL, connect.WithGRPC()),
		transport: transport,
	}
}
