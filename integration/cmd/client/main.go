// Command client is what the Gateway API conformance suite's mesh tests
// exec in an echo Pod (package integration/meshclient says how each
// protocol is sent):
//
//	client grpc://HOST:PORT [-H name:value]... [--count=N]
//	client http://HOST[:PORT]/PATH [--method=M] [-H name:value]... [--count=N]
//
// It reads SWITCHBOARD_XDS_SERVER, POD_NAME and POD_NAMESPACE from its
// environment. It exits 0 when every call got a response (any HTTP
// status), 1 when some call failed (the responses are still printed), 2 on
// a usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/switchboard-xds/switchboard/integration/meshclient"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts, err := meshclient.Parse(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(2)
	}
	if err := meshclient.Run(ctx, opts, os.Stdout); err != nil {
		if !errors.Is(err, meshclient.ErrFailed) {
			fmt.Fprintln(os.Stderr, "client:", err)
		}
		os.Exit(1)
	}
}
