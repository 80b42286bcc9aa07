// Command tfstate-cli is an example of the Go client: it reads and writes a workspace's state,
// shows and takes its lock, and follows lock changes as the server pushes them.
//
//	go run ./examples/tfstate-cli -url http://127.0.0.1:8080 get default > terraform.tfstate
//	go run ./examples/tfstate-cli put default terraform.tfstate
//	go run ./examples/tfstate-cli -grpc watch default
//
// The bearer token, when the server needs one, comes from $OCI_TFSTATE_TOKEN; -ca-file trusts an
// extra CA for https:// URLs.
package main

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"connectrpc.com/connect"

	tfstatev1 "github.com/oci-tfstate/oci-tfstate/clients/go/gen/tfstate/v1"
	"github.com/oci-tfstate/oci-tfstate/clients/go/tfstate"
)

const usage = `usage: tfstate-cli [flags] COMMAND WORKSPACE [FILE]

commands:
  get WORKSPACE          write the current state to stdout
  put WORKSPACE FILE     replace the state with FILE ("-" for stdin), checked by MD5
  lock WORKSPACE         take the lock and print its ID
  unlock WORKSPACE ID    release the lock with that ID
  watch WORKSPACE        print lock changes until interrupted ("" watches every workspace)

flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Getenv("OCI_TFSTATE_TOKEN")); err != nil {
		fmt.Fprintln(os.Stderr, "tfstate-cli:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer, token string) error {
	flags := flag.NewFlagSet("tfstate-cli", flag.ContinueOnError)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), usage)
		flags.PrintDefaults()
	}
	baseURL := flags.String("url", "http://127.0.0.1:8080", "base URL of the oci-tfstate server")
	useGRPC := flags.Bool("grpc", false, "speak gRPC instead of Connect")
	caFile := flags.String("ca-file", "", "PEM file of a CA to trust for https:// URLs")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() < 2 {
		flags.Usage()
		return errors.New("missing COMMAND or WORKSPACE")
	}
	command, workspace := flags.Arg(0), flags.Arg(1)

	opts := []tfstate.Option{}
	if token != "" {
		opts = append(opts, tfstate.WithBearerToken(token))
	}
	if *useGRPC {
		opts = append(opts, tfstate.WithProtocol(tfstate.ProtocolGRPC))
	}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%s holds no PEM certificate", *caFile)
		}
		opts = append(opts, tfstate.WithTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}))
	}
	client, err := tfstate.New(*baseURL, opts...)
	if err != nil {
		return err
	}

	switch command {
	case "get":
		res, err := client.State.GetState(ctx, connect.NewRequest(&tfstatev1.GetStateRequest{Workspace: workspace}))
		if err != nil {
			return err
		}
		_, err = stdout.Write(res.Msg.GetState())
		return err
	case "put":
		if flags.NArg() != 3 {
			return errors.New("put needs WORKSPACE and FILE")
		}
		state, err := readFile(flags.Arg(2), stdin)
		if err != nil {
			return err
		}
		sum := md5.Sum(state)
		res, err := client.State.PutState(ctx, connect.NewRequest(&tfstatev1.PutStateRequest{
			Workspace: workspace, State: state, Md5: sum[:],
		}))
		if err != nil {
			return describeLockError(err)
		}
		_, err = fmt.Fprintf(stdout, "stored %d bytes as %s (version %d)\n",
			res.Msg.GetMetadata().GetSizeBytes(), res.Msg.GetMetadata().GetDigest(), res.Msg.GetMetadata().GetVersion())
		return err
	case "lock":
		who, _ := os.Hostname()
		res, err := client.State.Lock(ctx, connect.NewRequest(&tfstatev1.LockRequest{
			Workspace: workspace,
			Lock:      &tfstatev1.LockInfo{Operation: "tfstate-cli", Who: os.Getenv("USER") + "@" + who},
		}))
		if err != nil {
			return describeLockError(err)
		}
		_, err = fmt.Fprintln(stdout, res.Msg.GetLock().GetId())
		return err
	case "unlock":
		if flags.NArg() != 3 {
			return errors.New("unlock needs WORKSPACE and the lock ID")
		}
		_, err := client.State.Unlock(ctx, connect.NewRequest(&tfstatev1.UnlockRequest{Workspace: workspace, LockId: flags.Arg(2)}))
		return describeLockError(err)
	case "watch":
		return watch(ctx, client, workspace, stdout)
	default:
		flags.Usage()
		return fmt.Errorf("unknown command %q", command)
	}
}

func watch(ctx context.Context, client *tfstate.Client, workspace string, stdout io.Writer) error {
	stream, err := client.State.WatchLock(ctx, connect.NewRequest(&tfstatev1.WatchLockRequest{Workspace: workspace}))
	if err != nil {
		return err
	}
	defer stream.Close()
	for stream.Receive() {
		msg := stream.Msg()
		line := fmt.Sprintf("%s %s", msg.GetKind(), msg.GetWorkspace())
		if holder := msg.GetLock(); holder != nil {
			line += fmt.Sprintf(" id=%s who=%s operation=%s", holder.GetId(), holder.GetWho(), holder.GetOperation())
		}
		if _, err := fmt.Fprintln(stdout, line); err != nil {
			return err
		}
	}
	if err := stream.Err(); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// describeLockError names the holder when the server refused a call because of the lock.
func describeLockError(err error) error {
	if detail, ok := tfstate.LockHolder(err); ok {
		holder := detail.GetHolder()
		return fmt.Errorf("%w (held by %s since %s, lock ID %s, operation %s)", err,
			holder.GetWho(), holder.GetCreated().AsTime().Format("2006-01-02 15:04:05Z07:00"), holder.GetId(), holder.GetOperation())
	}
	return err
}

func readFile(name string, stdin io.Reader) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(name)
}
