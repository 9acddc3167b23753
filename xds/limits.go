package xds

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// Limits bound what one client can make the server do: how much it may
// open, send and subscribe, and how much of what it says is kept and
// logged. A client past a limit is refused (RESOURCE_EXHAUSTED, with a
// message naming the limit and the `switchboard serve` flag that sets it)
// or has its words cut short; either way, other clients see nothing of it,
// and switchboard_xds_limit_exceeded_total{limit} counts it. A zero field
// takes its default (DefaultLimits).
//
// MaxConnections needs Server.LimitListener, and MaxStreamsPerConnection,
// MaxRequestBytes and HandshakeTimeout need Server.GRPCServerOptions on
// the grpc.Server; the rest work on the stream.
type Limits struct {
	// MaxConnections bounds the connections open at once; one more is
	// closed as soon as it is accepted (--xds-max-connections).
	MaxConnections int
	// MaxStreamsPerConnection bounds the ADS streams open at once on one
	// connection (--xds-max-streams-per-connection).
	MaxStreamsPerConnection int
	// MaxRequestBytes bounds the size of one request message
	// (--xds-max-request-bytes).
	MaxRequestBytes int
	// MaxNames bounds the names of one type a stream subscribes to (a
	// SotW request's resource_names, the sum of a delta stream's
	// subscriptions), and the entries of a delta request's
	// initial_resource_versions (--xds-max-names).
	MaxNames int
	// MaxNodeIDBytes bounds the node id (and user agent) kept for
	// /debug/clients and logged; a longer one is cut short with a marker
	// that says its full length (--xds-max-node-id-bytes).
	MaxNodeIDBytes int
	// MaxNackDetailBytes bounds the error_detail message of a NACK kept
	// and logged, the same way (--xds-max-nack-detail-bytes).
	MaxNackDetailBytes int
	// NackLogInterval spaces the NACK log lines of one stream: a burst of
	// one per resource type, then one per interval; the rest are counted
	// in the next line that is logged (--xds-nack-log-interval).
	NackLogInterval time.Duration
	// MaxUnknownListeners bounds the placeholder listeners
	// (CacheOptions.UnknownListener) one stream is served for listener
	// names that name no Service; further such names go unanswered
	// (--xds-max-unknown-listeners).
	MaxUnknownListeners int
	// FirstRequestTimeout bounds the wait for a stream's first request,
	// whole: a stream that has sent none (or only part of one) by then is
	// ended with DEADLINE_EXCEEDED, which frees what grpc buffered of the
	// part (--xds-first-request-timeout).
	FirstRequestTimeout time.Duration
	// HandshakeTimeout bounds a connection's TLS and HTTP/2 handshake
	// (grpc.ConnectionTimeout, 120 s in grpc-go): a connection that has
	// not finished it is closed, and gives back its MaxConnections slot
	// (--xds-handshake-timeout).
	HandshakeTimeout time.Duration
	// MaxCSDSInFlight bounds the CSDS requests answered at once, over all
	// askers; one more is refused with RESOURCE_EXHAUSTED
	// (--xds-csds-max-in-flight).
	MaxCSDSInFlight int
	// MaxCSDSResponseBytes bounds one CSDS answer (its wire size): clients
	// are added in stream order while the answer stays within it, and the
	// rest left out (--xds-csds-max-response-bytes).
	MaxCSDSResponseBytes int
}

// DefaultLimits returns the limits of `switchboard serve` without flags;
// README's flags table gives the reason for each.
func DefaultLimits() Limits {
	return Limits{
		MaxConnections:          4096,
		MaxStreamsPerConnection: 16,
		MaxRequestBytes:         4 << 20,
		MaxNames:                50000,
		MaxNodeIDBytes:          256,
		MaxNackDetailBytes:      4096,
		NackLogInterval:         10 * time.Second,
		MaxUnknownListeners:     100,
		FirstRequestTimeout:     15 * time.Second,
		HandshakeTimeout:        10 * time.Second,
		MaxCSDSInFlight:         2,
		MaxCSDSResponseBytes:    4 << 20,
	}
}

// withDefaults returns l with each zero field set to its default.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	def := func(v *int, dv int) {
		if *v <= 0 {
			*v = dv
		}
	}
	def(&l.MaxConnections, d.MaxConnections)
	def(&l.MaxStreamsPerConnection, d.MaxStreamsPerConnection)
	def(&l.MaxRequestBytes, d.MaxRequestBytes)
	def(&l.MaxNames, d.MaxNames)
	def(&l.MaxNodeIDBytes, d.MaxNodeIDBytes)
	def(&l.MaxNackDetailBytes, d.MaxNackDetailBytes)
	def(&l.MaxUnknownListeners, d.MaxUnknownListeners)
	def(&l.MaxCSDSInFlight, d.MaxCSDSInFlight)
	def(&l.MaxCSDSResponseBytes, d.MaxCSDSResponseBytes)
	for _, v := range []struct {
		v *time.Duration
		d time.Duration
	}{
		{&l.NackLogInterval, d.NackLogInterval},
		{&l.FirstRequestTimeout, d.FirstRequestTimeout},
		{&l.HandshakeTimeout, d.HandshakeTimeout},
	} {
		if *v.v <= 0 {
			*v.v = v.d
		}
	}
	return l
}

// limit names one of the Limits: its metric label and its flag.
type limit int

const (
	limitConnections limit = iota
	limitStreams
	limitRequestBytes
	limitNames
	limitNodeID
	limitNackDetail
	limitNackLog
	limitUnknownListeners
	limitFirstRequest
	limitCSDSInFlight
	limitCSDSBytes
	numLimits
)

var limitInfo = [numLimits]struct{ label, flag string }{
	limitConnections:      {"connections", "--xds-max-connections"},
	limitStreams:          {"streams_per_connection", "--xds-max-streams-per-connection"},
	limitRequestBytes:     {"request_bytes", "--xds-max-request-bytes"},
	limitNames:            {"names", "--xds-max-names"},
	limitNodeID:           {"node_id_bytes", "--xds-max-node-id-bytes"},
	limitNackDetail:       {"nack_detail_bytes", "--xds-max-nack-detail-bytes"},
	limitNackLog:          {"nack_log", "--xds-nack-log-interval"},
	limitUnknownListeners: {"unknown_listeners", "--xds-max-unknown-listeners"},
	limitFirstRequest:     {"first_request", "--xds-first-request-timeout"},
	limitCSDSInFlight:     {"csds_in_flight", "--xds-csds-max-in-flight"},
	limitCSDSBytes:        {"csds_response_bytes", "--xds-csds-max-response-bytes"},
}

// noFirstRequest ends a stream that sent no whole request within
// Limits.FirstRequestTimeout: counted and logged as a refusal.
func (s *Server) noFirstRequest() error {
	d := s.limits.FirstRequestTimeout
	s.refused(limitFirstRequest, "no request within the timeout of a stream's start", int(d.Milliseconds()), int(d.Milliseconds()))
	return status.Errorf(codes.DeadlineExceeded, "no request within %v of the stream's start (switchboard serve %s)", d, limitInfo[limitFirstRequest].flag)
}

// refuse counts a request refused by limit l and returns the error that
// ends its stream: what was asked, the limit, and the flag that sets it.
func (s *Server) refuse(l limit, what string, got, max int) error {
	s.refused(l, what, got, max)
	return status.Errorf(codes.ResourceExhausted, "%s: %d exceeds the limit of %d (switchboard serve %s)", what, got, max, limitInfo[l].flag)
}

// refused counts a refusal by limit l and logs it, at most one line per
// NackLogInterval for the whole server: a client refused retries, and
// many clients may.
func (s *Server) refused(l limit, what string, got, max int) {
	s.metrics.limitExceeded(l)
	if s.refusals.AllowN(s.now(), 1) {
		s.log.Warn("refused a client past a limit", "limit", limitInfo[l].label, "what", what, "got", got, "max", max, "flag", limitInfo[l].flag)
	}
}

// cut returns s cut to at most max bytes (at a rune boundary) followed by
// a marker giving its full length, and whether it was cut.
func cut(s string, max int) (string, bool) {
	if len(s) <= max {
		return s, false
	}
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "...[cut: " + strconv.Itoa(len(s)) + " bytes]", true
}

// cutCounted is cut, counting a cut under limit l.
func (s *Server) cutCounted(l limit, v string, max int) string {
	out, cutShort := cut(v, max)
	if cutShort {
		s.metrics.limitExceeded(l)
	}
	return out
}

// nackLog spaces the NACK log lines of one stream (Limits.NackLogInterval).
type nackLog struct {
	limiter    *rate.Limiter
	suppressed int
}

// newRefusalLog spaces the server's log lines about refusals.
func newRefusalLog(l Limits) *rate.Limiter {
	return rate.NewLimiter(rate.Every(l.NackLogInterval), 1)
}

func newNackLog(l Limits) nackLog {
	return nackLog{limiter: rate.NewLimiter(rate.Every(l.NackLogInterval), int(numTypes))}
}

// allow reports whether a NACK line may be logged now and, if so, how many
// were held back since the last one; a line held back is counted.
func (st *stream) allowNackLog() (bool, int) {
	nl := &st.nackLog
	if !nl.limiter.AllowN(st.srv.now(), 1) {
		nl.suppressed++
		st.srv.metrics.limitExceeded(limitNackLog)
		return false, 0
	}
	n := nl.suppressed
	nl.suppressed = 0
	return true, n
}

// GRPCServerOptions returns the options a grpc.Server needs to serve s:
// the request codec (GRPCServerOption) and the transport side of s's
// Limits. A stream over MaxStreamsPerConnection is refused by the server
// with a message naming the flag; the HTTP/2 transport is told to allow
// one stream more than that, so that such a stream reaches the server to
// be told why (a grpc client would otherwise queue it without a word),
// and a client that ignores it has its streams reset. A request over
// MaxRequestBytes ends its stream with grpc's own RESOURCE_EXHAUSTED,
// "grpc: received message larger than max (N vs. MAX)": grpc writes that
// status itself, so only the server's log line names the flag. A
// connection whose handshake takes longer than HandshakeTimeout is closed
// by grpc without a word (it has no stream to tell).
func (s *Server) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		GRPCServerOption(),
		grpc.MaxRecvMsgSize(s.limits.MaxRequestBytes),
		grpc.MaxConcurrentStreams(uint32(s.limits.MaxStreamsPerConnection) + 1),
		grpc.ConnectionTimeout(s.limits.HandshakeTimeout),
		grpc.StatsHandler(connTagger{}),
		grpc.ChainStreamInterceptor(s.limitStream),
	}
}

// connTagger gives every connection the set of its open streams, in the
// context its streams' contexts derive from.
type connTagger struct{}

type connStreamsKey struct{}

func (connTagger) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connStreamsKey{}, &connStreams{open: map[*byte]context.Context{}})
}
func (connTagger) HandleConn(context.Context, stats.ConnStats) {}
func (connTagger) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}
func (connTagger) HandleRPC(context.Context, stats.RPCStats) {}

// connStreams are the streams of one connection, each by its context. A
// stream counts against MaxStreamsPerConnection while its context lives:
// a stream the client cancelled frees its slot at once, though its
// handler may take a moment more to return. grpc cancels a stream's
// context as it reads the client's RST_STREAM, before it reads the frames
// that follow, so a stream opened just after a cancel finds the slot free.
type connStreams struct {
	mu   sync.Mutex
	open map[*byte]context.Context
}

// add counts a new stream and returns how many streams of the connection
// are live with it, and its token for remove.
func (cs *connStreams) add(ctx context.Context) (*byte, int) {
	tok := new(byte)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.open[tok] = ctx
	n := 0
	for _, c := range cs.open {
		if c.Err() == nil {
			n++
		}
	}
	return tok, n
}

func (cs *connStreams) remove(tok *byte) {
	cs.mu.Lock()
	delete(cs.open, tok)
	cs.mu.Unlock()
}

func (s *Server) limitStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if cs, ok := ss.Context().Value(connStreamsKey{}).(*connStreams); ok {
		tok, n := cs.add(ss.Context())
		defer cs.remove(tok)
		if n > s.limits.MaxStreamsPerConnection {
			return s.refuse(limitStreams, "streams open on this connection", n, s.limits.MaxStreamsPerConnection)
		}
	}
	return handler(srv, &limitedStream{ServerStream: ss, srv: s})
}

// limitedStream counts and logs the requests too large for grpc.
type limitedStream struct {
	grpc.ServerStream
	srv *Server
}

func (ls *limitedStream) RecvMsg(m any) error {
	err := ls.ServerStream.RecvMsg(m)
	if status.Code(err) == codes.ResourceExhausted {
		ls.srv.refused(limitRequestBytes, status.Convert(err).Message(), 0, ls.srv.limits.MaxRequestBytes)
	}
	return err
}

// LimitListener returns lis with at most Limits.MaxConnections connections
// open at once. A connection beyond that is accepted and closed at once:
// its client sees the connection end (UNAVAILABLE) and retries with
// backoff, possibly on another replica behind the Service, rather than
// wait unanswered in the listen backlog as with a listener that stops
// accepting (golang.org/x/net/netutil.LimitListener), where it would also
// hold a backlog slot that a well-behaved client needs once a connection
// ends. Refusals are counted and logged at most once per NackLogInterval.
func (s *Server) LimitListener(lis net.Listener) net.Listener {
	return &limitListener{Listener: lis, srv: s}
}

type limitListener struct {
	net.Listener
	srv  *Server
	open atomic.Int64
}

func (l *limitListener) Accept() (net.Conn, error) {
	max := int64(l.srv.limits.MaxConnections)
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= max {
			return &limitedConn{Conn: c, release: func() { l.open.Add(-1) }}, nil
		}
		l.open.Add(-1)
		_ = c.Close()
		l.srv.refused(limitConnections, "connection from "+c.RemoteAddr().String(), int(max)+1, int(max))
	}
}

// limitedConn gives its slot back when first closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// checkNames refuses a subscription of n names of type t.
func (st *stream) checkNames(t typeIndex, what string, n int) error {
	if max := st.srv.limits.MaxNames; n > max {
		return st.srv.refuse(limitNames, fmt.Sprintf("%s %s", t, what), n, max)
	}
	return nil
}

// unknownCapped notes that the listener name went unanswered, for the
// stream holds MaxUnknownListeners placeholders: counted and logged once
// per stream.
func (st *stream) unknownCapped(ts *typeState, name string) {
	if ts.unknownCapped {
		return
	}
	ts.unknownCapped = true
	st.srv.metrics.limitExceeded(limitUnknownListeners)
	n, _ := cut(name, st.srv.limits.MaxNodeIDBytes)
	st.logger().Warn("client subscribed to more listener names that name no Service than get a placeholder; the rest go unanswered",
		"name", n, "limit", st.srv.limits.MaxUnknownListeners, "flag", limitInfo[limitUnknownListeners].flag)
}
