package main

import (
	"strings"
	"testing"
	"time"
)

func TestReporter(t *testing.T) {
	start := time.UnixMilli(1_000_000)
	var out strings.Builder
	r := newReporter(time.Second, start, &out)
	at := func(ms int64) int64 { return start.UnixMilli() + ms }
	for _, res := range []result{
		{T: at(100), Backend: "backend-b"},
		{T: at(200), Backend: "backend-a"},
		{T: at(300), Backend: "backend-a"},
		{T: at(400), Code: 14, Error: "no children"},
		// Second interval: only backend-a.
		{T: at(1100), Backend: "backend-a"},
		// Nothing in the third; the fourth starts here.
		{T: at(3500), Backend: "backend-a"},
	} {
		if err := r.add(res); err != nil {
			t.Fatal(err)
		}
	}
	r.flush(start.Add(3500 * time.Millisecond))
	want := "calls/s: backend-a 2  backend-b 1  errors 1 (last: code 14: no children)\n" +
		"calls/s: backend-a 1  backend-b 0  errors 0\n" +
		"calls/s: backend-a 0  backend-b 0  errors 0\n" +
		// The flushed half second had one call: 2 per second.
		"calls/s: backend-a 2  backend-b 0  errors 0\n"
	if got := out.String(); got != want {
		t.Errorf("reporter wrote\n%s\nwant\n%s", got, want)
	}
}
