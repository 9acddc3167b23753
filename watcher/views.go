package watcher

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/switchboard-xds/switchboard/model"
)

// ManifestViews returns the views that a manifest folder holding one file
// named file with content data would publish: the objects decoded by the
// manifest source's decoder and joined by a Store with opts' namespaces and
// selector, sorted by key. It is for golden tests, benchmarks and tools
// that want exactly what the binary serves for a piece of YAML, through the
// same code. A file that does not decode, or holds any document that is not
// a valid object, is an error naming it (the source would serve the valid
// rest; a caller of this wants to know).
func ManifestViews(file string, data []byte, opts Options) ([]*model.Service, error) {
	b, err := ManifestWorld(file, data, opts)
	if err != nil {
		return nil, err
	}
	views := b.Services
	out := make([]*model.Service, 0, len(views))
	for _, k := range slices.SortedFunc(maps.Keys(views), func(a, b model.ServiceKey) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	}) {
		out = append(out, views[k])
	}
	return out, nil
}

// ManifestWorld is ManifestViews returning the Full batch that the
// manifest source would publish for the file: its Services, mesh routes and
// ReferenceGrants.
func ManifestWorld(file string, data []byte, opts Options) (model.Batch, error) {
	dec, err := newManifestDecoder(slog.New(slog.DiscardHandler))
	if err != nil {
		return model.Batch{}, err
	}
	objs, bad, err := dec.decodeFile(file, data)
	if err != nil {
		return model.Batch{}, fmt.Errorf("%s: %w", file, err)
	}
	if len(bad) > 0 {
		errs := make([]error, len(bad))
		for i, b := range bad {
			errs[i] = b.err
		}
		return model.Batch{}, fmt.Errorf("%s: %w", file, errors.Join(errs...))
	}
	s, err := NewStore(opts)
	if err != nil {
		return model.Batch{}, err
	}
	for _, o := range objs {
		o.upsert(s, opts.NodeRegions)
	}
	b := model.Batch{Full: true, Services: s.TakeAll()}
	b.Routes, b.Grants = s.takeMesh(true)
	return b, nil
}
