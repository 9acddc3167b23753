# Switchboard's image: `make image` (needs a Docker engine; none was at hand
# where this file was written, so it has not been built yet).
#
# Stage 1 builds a static binary (no cgo) with the pinned Go toolchain;
# stage 2 is distroless "static" (no shell, no package manager) running as
# the non-root user 65532, which the Deployment in deploy/kubernetes expects.
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/switchboard ./cmd/switchboard

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/switchboard /switchboard
USER 65532:65532
# 18000: xDS (gRPC); 9090: admin (/metrics, /healthz, /readyz, /debug/...).
EXPOSE 18000 9090
ENTRYPOINT ["/switchboard"]
CMD ["serve"]
