package tfstate_test

import (
	"context"
	"fmt"
	"log"

	"connectrpc.com/connect"

	tfstatev1 "github.com/oci-tfstate/oci-tfstate/clients/go/gen/tfstate/v1"
	"github.com/oci-tfstate/oci-tfstate/clients/go/tfstate"
)

// Reads a workspace's state, and names the lock holder when a lock attempt is refused.
func ExampleNew() {
	ctx := context.Background()
	c, err := tfstate.New("http://127.0.0.1:8080", tfstate.WithBearerToken("token"), tfstate.WithProtocol(tfstate.ProtocolGRPC))
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.State.GetState(ctx, connect.NewRequest(&tfstatev1.GetStateRequest{Workspace: "default"}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d bytes, version %d\n", len(res.Msg.GetState()), res.Msg.GetMetadata().GetVersion())

	_, err = c.State.Lock(ctx, connect.NewRequest(&tfstatev1.LockRequest{
		Workspace: "default",
		Lock:      &tfstatev1.LockInfo{Operation: "OperationTypeApply", Who: "ci@runner"},
	}))
	if detail, ok := tfstate.LockHolder(err); ok {
		fmt.Println("locked by", detail.GetHolder().GetWho())
	}
}
