// Command etcd is etcd v3.6.16 built from its published Go module, so the
// integration tests do not depend on a distribution package (Debian ships 3.4,
// which makes the API server switch off its watch-progress code paths).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
