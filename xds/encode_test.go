package xds

import (
	"google.golang.org/protobuf/proto"

	"github.com/switchboard-xds/switchboard/model"
)

// enc encodes one resource message as the translator hands it over:
// deterministic bytes, named by its name (an assignment by its cluster).
func enc(m proto.Message) model.Encoded {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(err)
	}
	var name string
	switch m := m.(type) {
	case interface{ GetClusterName() string }:
		name = m.GetClusterName()
	case interface{ GetName() string }:
		name = m.GetName()
	}
	return model.NewEncoded(name, b)
}

// encs encodes each of ms.
func encs[M proto.Message](ms ...M) []model.Encoded {
	out := make([]model.Encoded, len(ms))
	for i, m := range ms {
		out[i] = enc(m)
	}
	return out
}
