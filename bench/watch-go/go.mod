module github.com/oci-tfstate/oci-tfstate/bench/watch-go

go 1.26.0

replace github.com/oci-tfstate/oci-tfstate/clients/go => ../../clients/go

require (
	connectrpc.com/connect v1.21.1
	github.com/oci-tfstate/oci-tfstate/clients/go v0.0.0-00010101000000-000000000000
	golang.org/x/sys v0.50.0
)

require google.golang.org/protobuf v1.36.12
