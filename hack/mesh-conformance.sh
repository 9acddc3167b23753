#!/bin/sh
# Regenerates translator/testdata/routes/in/conformance-*.yaml from the mesh
# test manifests of the pinned Gateway API conformance module: each is the
# suite's mesh/manifests.yaml (namespaces, Services) followed by one
# tests/mesh/*.yaml. The golden test translates every one of them.
set -eu
version=$(go list -m -f '{{.Version}}' sigs.k8s.io/gateway-api)
dir=$(go mod download -json "sigs.k8s.io/gateway-api/conformance@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
out=translator/testdata/routes/in
mkdir -p "$out"
rm -f "$out"/conformance-*.yaml
for f in "$dir"/tests/mesh/*.yaml; do
	name=$(basename "$f" .yaml)
	{
		echo "# From sigs.k8s.io/gateway-api/conformance@$version: mesh/manifests.yaml and tests/mesh/$name.yaml"
		cat "$dir/mesh/manifests.yaml"
		echo "---"
		cat "$f"
	} >"$out/conformance-$name.yaml"
done
