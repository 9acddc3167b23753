# Every entry point of Switchboard. `make help` lists them.
#
# Tools the tests need are built from pinned modules into a versioned folder
# outside the clone (hack/tools/install.sh) and reused across clones, so the
# first `make test` on a machine took 41 minutes (2 idle cores) and later ones about 9.

SHELL := /usr/bin/env bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN := bin
CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/switchboard
GOLANGCI_VERSION := 2.15.0
GOLANGCI := $(CACHE)/lint-$(GOLANGCI_VERSION)/golangci-lint
# Integration tests run in a network namespace of their own; they need root
# (CI runs as root) and the tools from `make tools`.
TEST_FLAGS ?= -race -count=1 -timeout 30m

IMAGE ?= switchboard:dev
ARCH ?= $(shell $(GO) env GOARCH)

.PHONY: bench-encoders soak fuzz help build image tools clients test test-unit test-integration golden-check bench bench-quick bench-smoke lint fmt demo clean conformance

help:
	@echo "make demo        run Switchboard on deploy/examples with 3 backends and a real gRPC xDS client"
	@echo "make test        everything: tools, unit, golden, integration (real kube-apiserver + etcd, 3 real xDS clients)"
	@echo "make build       build bin/switchboard"
	@echo "make image       build the image $(IMAGE) for linux/$(ARCH) without Docker: OCI layout $(BIN)/image, tarball $(BIN)/switchboard-image.tar"
	@echo "make tools       build kube-apiserver, kube-controller-manager, kube-scheduler, etcd and KWOK into $(CACHE) (first time: about 15 min on 2 idle cores); apt-get install prometheus, iptables and shellcheck if missing"
	@echo "make lint        gofmt, go vet, golangci-lint $(GOLANGCI_VERSION) (with the layout rules), go mod tidy, no machine paths"
	@echo "make bench       Go benchmarks + load comparison (N=100,1000; R=1000) into $(BENCH_OUT)/, churn (N=1000) into $(BENCH_OUT)/churn/, Envoy sidecars into $(BENCH_OUT)/envoy/, mesh routes against none into $(BENCH_OUT)/routes/"
	@echo "make bench-quick the same at N=100, R=100 in under 3 minutes"
	@echo "make conformance the Gateway API mesh conformance suite (MESH-HTTP, MESH-GRPC) against Switchboard in the harness cluster; writes $(CONFORMANCE_REPORT)"
	@echo "make soak        churn soak against the binary for SOAK_DURATION (default $(SOAK_DURATION)); not part of make test"
	@echo "make fuzz        run every fuzz target for FUZZTIME each (default $(FUZZTIME)); their seeds run in make test"

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/switchboard ./cmd/switchboard

# The container image, built without a container engine (hack/image, with
# go-containerregistry): the static binary alone on an empty base, user
# 65532, entrypoint /switchboard, every timestamp the commit time, so the
# same commit gives the same digest. Push with `crane push $(BIN)/image
# REGISTRY/switchboard:TAG` (docs/install.md); ARCH=arm64 cross-builds.
image:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(ARCH) $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/linux_$(ARCH)/switchboard ./cmd/switchboard
	$(GO) run ./hack/image --binary $(BIN)/linux_$(ARCH)/switchboard --arch $(ARCH) --tag $(IMAGE) --version $(VERSION) \
		--created "$$(git log -1 --format=%ct 2>/dev/null || echo 0)" --layout $(BIN)/image --tarball $(BIN)/switchboard-image.tar

tools:
	@bash hack/tools/install.sh
	@bash hack/tools/prometheus.sh
	@bash hack/tools/iptables.sh

clients:
	@bash hack/clients.sh

test: tools clients golden-check
	$(GO) test $(TEST_FLAGS) ./...
	cd integration/conformance && $(GO) test $(TEST_FLAGS) .
	$(MAKE) bench-smoke

test-unit:
	@bash hack/tools/iptables.sh  # shellcheck, for deploy/sidecar's TestScriptsParse; instant when present
	$(GO) test $(TEST_FLAGS) ./watcher/... ./translator/... ./xds/... ./cmd/... ./deploy/... ./hack/image/

test-integration: tools clients
	$(GO) test $(TEST_FLAGS) ./integration/...

# The translator's golden files, the dashboard and the PrometheusRule must be
# what the code writes: regenerate and fail when that leaves a difference.
GENERATED := translator/testdata deploy/grafana deploy/kubernetes/overlays/monitoring/prometheusrule.yaml
golden-check:
	$(GO) test -count=1 ./translator/ -run Golden -update
	$(GO) test -count=1 ./deploy/observability/ -run Generated -update
	@git diff --exit-code -- $(GENERATED) || { echo "generated files are stale: run 'go test ./translator -run Golden -update' and 'go test ./deploy/observability -run Generated -update' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- $(GENERATED))" || { git status --porcelain -- $(GENERATED); echo "generated files not committed"; exit 1; }

# Load comparison (cmd/switchboard-load): Switchboard, go-control-plane's
# LinearCache and SnapshotCache, and a fan-out floor on the same world; the
# report (text, Markdown, SVG) goes to $(BENCH_OUT)/. The SnapshotCache sends
# every subscribed assignment to every client per change (N x R), so it runs
# at N=100 only and every server gets at most LOAD_BUDGET of changes.
# Churn (issue 4) is a second run into $(BENCH_OUT)/churn/ at N=1000, R=1000
# with each client subscribed to 10 Services (with all 1000, one change is
# 1000 x 6.7 KB of EDS and 100/s outruns what 1000 clients on this machine
# can take in, whatever the server): LOAD_CHURN_RATES changes/s for
# LOAD_CHURN_DURATION each, Zipf over the Services. The SnapshotCache is left
# out (every change resends all 10 subscribed assignments to all 1000
# clients). A server still behind LOAD_CHURN_DRAIN after a phase skips the
# higher rates, so the run ends. A third run, into $(BENCH_OUT)/delta/, has
# the clients speak delta xDS (as Envoy can); the SnapshotCache is left out.
# A fourth, into $(BENCH_OUT)/envoy/ (issue 11), has Envoy-shaped sidecars
# (wildcard LDS+CDS, then RDS and EDS for what they learn) and gRPC clients
# on the same world with the sidecar resources, SotW and delta, N=100,1000,
# R=1000 over 10 namespaces: endpoint-change and Service-added convergence,
# bytes, CPU and heap per sidecar; the SnapshotCache is left out.
BENCH_OUT ?= bench-out
LOAD_BUDGET ?= 60s
LOAD_CHURN_RATES ?= 10,100,1000
LOAD_CHURN_DURATION ?= 60s
LOAD_CHURN_DRAIN ?= 30s
LOAD := $(BENCH_OUT)/switchboard-load

$(LOAD): FORCE
	@mkdir -p $(BENCH_OUT)
	$(GO) build -o $(LOAD) ./cmd/switchboard-load

bench: $(LOAD)
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem ./translator/ ./xds/ ./pipeline/ | tee $(BENCH_OUT)/go-bench.txt
	$(MAKE) bench-encoders
	set -o pipefail; $(GO) test -run '^$$' -bench BenchmarkManifestRenameToACK -benchtime 30x ./internal/loadtest/ | tee $(BENCH_OUT)/manifest.txt
	$(LOAD) --clients 100,1000 --services 1000 --endpoints 100 --changes 200 --budget $(LOAD_BUDGET) \
		--kind-max-clients gcp-snapshot=100 --out $(BENCH_OUT)
	$(LOAD) --clients 1000 --services 1000 --endpoints 100 --per-client 10 --changes 0 \
		--churn-rates $(LOAD_CHURN_RATES) --churn-duration $(LOAD_CHURN_DURATION) --churn-drain $(LOAD_CHURN_DRAIN) \
		--kinds switchboard,gcp-linear,floor --out $(BENCH_OUT)/churn
	$(LOAD) --clients 100,1000 --services 1000 --endpoints 100 --changes 200 --budget $(LOAD_BUDGET) \
		--protocols delta --kinds switchboard,gcp-linear,floor --out $(BENCH_OUT)/delta
	$(LOAD) --clients 100,1000 --services 1000 --endpoints 100 --changes 200 --adds 20 --budget $(LOAD_BUDGET) \
		--protocols sotw,delta --shapes grpc,envoy --namespaces 10 --kinds switchboard,gcp-linear,floor --out $(BENCH_OUT)/envoy
	# Heap per sidecar at R=10,000 in 100 namespaces (issue 18; docs/performance.md#per-client-state).
	$(LOAD) --clients 100 --services 10000 --endpoints 10 --changes 20 --adds 2 --protocols delta --shapes envoy \
		--namespaces 100 --kinds switchboard --out $(BENCH_OUT)/sidecars-10k
	# Mesh routes (issue 19): endpoint changes to 100 sidecars with 1000
	# HTTPRoutes in the world against none, alternating, server in its own
	# process (docs/mesh-routes.md#cost).
	for i in 1 2 3; do for r in 0 1000; do \
		$(LOAD) --clients 100 --services 1000 --endpoints 10 --changes 200 --adds 0 --protocols delta --shapes envoy \
			--namespaces 10 --kinds switchboard --routes $$r --out $(BENCH_OUT)/routes/$$r-$$i || exit 1; done; done

bench-quick: $(LOAD)
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -benchtime 100ms ./translator/ ./xds/ ./pipeline/ | tee $(BENCH_OUT)/go-bench.txt
	$(LOAD) --clients 100 --services 100 --endpoints 100 --changes 200 --budget 10s \
		--churn-rates 100 --churn-duration 10s --churn-drain 20s --churn-kind-max-rate gcp-snapshot=10 --out $(BENCH_OUT)
	$(LOAD) --clients 100 --services 100 --endpoints 100 --changes 100 --budget 5s \
		--protocols delta --kinds switchboard,gcp-linear,floor --out $(BENCH_OUT)/delta

FORCE:

# The measurement behind the translator's choice of encoders: the hand
# writers against protobuf-go and vtprotobuf (its marshalers are compiled
# only with -tags vtprotobuf; the product does not use them), on views
# built by watcher.Store. See "Encoders" in the README.
bench-encoders:
	@mkdir -p $(BENCH_OUT)
	set -o pipefail; $(GO) test -tags vtprotobuf -run '^$$' -bench 'BenchmarkEncode' -benchmem ./translator/ | tee $(BENCH_OUT)/encoders.txt

# Churn soak (integration/soak_test.go, build tag soak, so `make test` never
# builds or lists it): endpoint changes and reconnecting clients against the
# real binary for SOAK_DURATION, ending with goroutines and heap within the
# test's stated bounds of their values after warm-up.
SOAK_DURATION ?= 10m

soak: tools clients
	SOAK_DURATION=$(SOAK_DURATION) $(GO) test -tags soak -count=1 -timeout 2h -run '^TestSoak$$' -v ./integration/

# Fuzzing (go test -fuzz): each target for FUZZTIME. Their seed corpora
# (the golden inputs, the demo's manifests, hand-picked requests) run in
# every `go test`, so `make test` runs them too; this searches further.
# Crashers land in the package's testdata/fuzz/ and then run in every
# `go test` as regression seeds: commit them with the fix.
FUZZTIME ?= 30s
FUZZ_TARGETS := ./watcher/:FuzzManifestDecode ./translator/:FuzzTranslateManifest ./translator/:FuzzService ./xds/:FuzzRequestCodec

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# Runs every benchmark once at its smallest size so that none can rot (the
# packages that have benchmarks; the load tool's smoke test runs in `test`).
bench-smoke:
	$(GO) test -run '^$$' -bench . -benchtime 1x -short ./model/... ./translator/... ./xds/... ./watcher/... ./pipeline/...
	$(GO) test -run '^$$' -bench BenchmarkManifestRenameToACK -benchtime 1x ./internal/loadtest/
	$(GO) test -tags vtprotobuf -run '^$$' -bench BenchmarkEncode -benchtime 1x -short ./translator/

$(GOLANGCI):
	@mkdir -p $(dir $(GOLANGCI))
	@echo "building golangci-lint v$(GOLANGCI_VERSION) into $(dir $(GOLANGCI)) (first time: a few minutes)"
	cd hack/tools/lint && GOWORK=off $(GO) build -o $(GOLANGCI) github.com/golangci/golangci-lint/v2/cmd/golangci-lint

lint: $(GOLANGCI)
	@$(GO) mod tidy -diff >/dev/null || { $(GO) mod tidy -diff; echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit"; exit 1; }
	@cd integration/conformance && { $(GO) mod tidy -diff >/dev/null || { $(GO) mod tidy -diff; echo "integration/conformance: go.mod/go.sum are not tidy"; exit 1; }; }
	@! git grep -nE '(/work/(main|shared|wt)|/root/|/home/[a-z]+/|/tmp/bash_jobs)' -- ':!Makefile' || { echo "a path of the machine it was written on, above"; exit 1; }
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GOLANGCI) run ./...
	cd integration/conformance && $(GO) vet ./... && $(GOLANGCI) run ./...

fmt: $(GOLANGCI)
	$(GOLANGCI) fmt ./...

# The Gateway API mesh conformance suite (sigs.k8s.io/gateway-api/conformance,
# run from its Go API by integration/conformance, a module of its own) against
# Switchboard in the harness's cluster (kube-controller-manager, kube-scheduler,
# KWOK); the suite's ConformanceReport goes to $(CONFORMANCE_REPORT).
# make test runs it too, with the report in a temporary folder;
# docs/conformance/README.md has the last run.
CONFORMANCE_REPORT := docs/conformance/gateway-api-v1.6.3-mesh-report.yaml
conformance: tools
	cd integration/conformance && $(GO) test $(TEST_FLAGS) -v -run '^TestMeshConformance$$' . -args -report-output $(CURDIR)/$(CONFORMANCE_REPORT)

demo:
	@bash hack/demo.sh

clean:
	rm -rf $(BIN)
