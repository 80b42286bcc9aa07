package tfstate

import (
	"errors"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	tfstatev1 "github.com/oci-tfstate/oci-tfstate/clients/go/gen/tfstate/v1"
)

// LockHolder returns the holder of the lock that made a call fail: the LockHeldDetail the
// service attaches to FAILED_PRECONDITION when another client holds the workspace lock, or when a
// fenced write quoted the wrong lock ID. It reports false for any other error.
func LockHolder(err error) (*tfstatev1.LockHeldDetail, bool) {
	return detail[*tfstatev1.LockHeldDetail](err)
}

// SizeLimit returns the SizeLimitDetail of a RESOURCE_EXHAUSTED error: which limit a state
// exceeded, and by how much. It reports false for any other error.
func SizeLimit(err error) (*tfstatev1.SizeLimitDetail, bool) {
	return detail[*tfstatev1.SizeLimitDetail](err)
}

func detail[T proto.Message](err error) (T, bool) {
	var zero T
	var connectErr *connect.Error
	if !errors.As(err, &connectErr) {
		return zero, false
	}
	want := string(zero.ProtoReflect().Descriptor().FullName())
	for _, d := range connectErr.Details() {
		if d.Type() != want {
			continue
		}
		value, err := d.Value()
		if err != nil {
			continue
		}
		if typed, ok := value.(T); ok {
			return typed, true
		}
	}
	return zero, false
}
