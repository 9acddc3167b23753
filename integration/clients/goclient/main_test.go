package main

import (
	"io"
	"slices"
	"testing"
	"time"
)

func TestParseFlagsRoundsAndCycle(t *testing.T) {
	args := []string{
		"--target", "xds:///x", "--header", "a=1",
		"--cycle-header", "x-user=u0,u1,u2", "--concurrency", "4", "--stagger-ms", "20",
	}
	opts, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if opts.concurrency != 4 || opts.stagger != 20*time.Millisecond {
		t.Errorf("concurrency, stagger = %d, %v; want 4, 20ms", opts.concurrency, opts.stagger)
	}
	for seq, want := range []string{"u0", "u1", "u2", "u0"} {
		md := opts.metadata(seq)
		if got := md.Get("x-user"); !slices.Equal(got, []string{want}) || !slices.Equal(md.Get("a"), []string{"1"}) {
			t.Errorf("metadata(%d) = %v, want x-user=%s and a=1", seq, md, want)
		}
	}
	if got := opts.header.Get("x-user"); len(got) != 0 {
		t.Errorf("cycled value leaked into the shared header: %v", got)
	}
	for _, bad := range [][]string{
		{"--target", "t", "--concurrency", "0"},
		{"--target", "t", "--stagger-ms", "-1"},
		{"--target", "t", "--cycle-header", "novalues"},
		{"--target", "t", "--cycle-header", "=a,b"},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
}
