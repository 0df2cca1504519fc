package server

// The lean HTTP/1.1 loop's http.ResponseWriter: net/http's own response writing (Go 1.26
// server.go: response, chunkWriter, extraHeader, finishRequest, shouldReuseConnection), ported
// for the requests the lean loop serves (HTTP/1.1, no request body, no Expect, no upgrade), so
// that the bytes on the wire are the ones net/http would write: the same status line, header
// order rules, Date, automatic Content-Length of short bodies, Content-Type sniffing, chunking,
// trailers, 1xx informational responses, HEAD and 204/304 handling, Connection: close rules.
// What it leaves out is what those requests cannot reach: 100-continue, HTTP/1.0 keep-alive,
// request body draining, hijacking.

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// bufferBeforeChunkingSize is net/http's: a handler that finishes within it gets a Content-Length.
const bufferBeforeChunkingSize = 2048

var (
	crlf       = []byte("\r\n")
	colonSpace = []byte(": ")
)

// leanResponse is one response of a lean connection; it is reset and reused for the next request
// of the same connection (the handler must not keep it, as with net/http).
type leanResponse struct {
	conn *leanConn
	req  *http.Request

	handlerHeader http.Header
	calledHeader  bool
	wroteHeader   bool
	handlerDone   bool
	status        int
	contentLength int64 // from the handler's Content-Length, -1 when none
	written       int64
	wantsClose    bool
	closeAfter    bool
	trailers      []string

	// The slow-reader cut of progressHandler, applied here for the loop's requests (see
	// progressWriter.arm): writeTimeout <= 0 disables it.
	writeTimeout time.Duration
	armedAt      int64

	w  *bufio.Writer // bufferBeforeChunkingSize, writes to cw
	cw leanChunkWriter

	statusBuf [3]byte
	clenBuf   [10]byte
	dateBuf   [len(http.TimeFormat)]byte
}

type leanChunkWriter struct {
	res         *leanResponse
	header      http.Header // snapshot of handlerHeader at WriteHeader, or nil
	wroteHeader bool
	chunking    bool
}

func (w *leanResponse) reset(req *http.Request) {
	w.req = req
	if w.handlerHeader == nil {
		w.handlerHeader = make(http.Header)
	} else {
		clear(w.handlerHeader)
	}
	w.calledHeader, w.wroteHeader, w.handlerDone = false, false, false
	w.status, w.contentLength, w.written = 0, -1, 0
	w.wantsClose, w.closeAfter = req.Close, false
	w.trailers = w.trailers[:0]
	w.armedAt, w.writeTimeout = 0, 0
	w.cw = leanChunkWriter{res: w}
	// As net/http: the buffer is the request's, from a pool (an idle connection holds none).
	if v := responseBuffers.Get(); v != nil {
		w.w = v.(*bufio.Writer)
		w.w.Reset(&w.cw)
	} else {
		w.w = bufio.NewWriterSize(&w.cw, bufferBeforeChunkingSize)
	}
}

var responseBuffers sync.Pool

// release returns the request's buffer; the response must not be written to any more.
func (w *leanResponse) release() {
	if w.w != nil {
		w.w.Reset(nil)
		responseBuffers.Put(w.w)
		w.w = nil
	}
}

func (w *leanResponse) Header() http.Header {
	if w.cw.header == nil && w.wroteHeader && !w.cw.wroteHeader {
		w.cw.header = w.handlerHeader.Clone()
	}
	w.calledHeader = true
	return w.handlerHeader
}

// arm is progressWriter.arm: the response write deadline, re-armed at most every timeout/64.
func (w *leanResponse) arm() {
	if w.writeTimeout <= 0 {
		return
	}
	now := time.Now()
	if last := w.armedAt; last != 0 && now.UnixNano()-last < int64(w.writeTimeout/64) {
		return
	}
	w.armedAt = now.UnixNano()
	_ = w.conn.rwc.SetWriteDeadline(now.Add(w.writeTimeout))
}

func (w *leanResponse) WriteHeader(code int) {
	w.arm()
	if w.wroteHeader {
		caller := relevantCaller()
		w.conn.logf("http: superfluous response.WriteHeader call from %s (%s:%d)", caller.Function, caller.File, caller.Line)
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		bw := w.conn.bufw
		writeStatusLine(bw, true, code, w.statusBuf[:])
		_ = w.handlerHeader.WriteSubset(bw, excludedHeadersNoBody)
		_, _ = bw.Write(crlf)
		_ = bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
	if cl := w.handlerHeader.Get("Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
		} else {
			w.conn.logf("http: invalid Content-Length of %q", cl)
			w.handlerHeader.Del("Content-Length")
		}
	}
	if w.calledHeader && w.cw.header == nil {
		if w.finalNow() {
			// The header cannot change what goes on the wire any more: write it now instead of
			// snapshotting it (net/http clones it and writes it with the first body bytes).
			w.cw.writeHeader(nil)
			return
		}
		w.cw.header = w.handlerHeader.Clone()
	}
}

// finalNow reports whether the header written at the first body write would be the same as the
// one written now: an explicit valid Content-Length, a Content-Type (or a status without body),
// no trailers, no Transfer-Encoding, not HEAD. Then neither the body's first bytes (sniffing,
// automatic Content-Length) nor the end of the handler can change it.
func (w *leanResponse) finalNow() bool {
	h := w.handlerHeader
	if w.contentLength < 0 || w.req.Method == http.MethodHead {
		return false
	}
	if _, ok := h["Content-Type"]; !ok && bodyAllowedForStatus(w.status) {
		return false
	}
	if _, ok := h["Transfer-Encoding"]; ok {
		return false
	}
	if _, ok := h["Trailer"]; ok {
		return false
	}
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return false
		}
	}
	return true
}

func (w *leanResponse) Write(data []byte) (int, error) { return w.write(len(data), data, "") }

func (w *leanResponse) WriteString(data string) (int, error) { return w.write(len(data), nil, data) }

func (w *leanResponse) write(lenData int, dataB []byte, dataS string) (int, error) {
	w.arm()
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if lenData == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(lenData)
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if dataB != nil {
		return w.w.Write(dataB)
	}
	return w.w.WriteString(dataS)
}

func (w *leanResponse) Flush() { _ = w.FlushError() }

func (w *leanResponse) FlushError() error {
	w.arm()
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	err := w.w.Flush()
	e2 := w.cw.flush()
	if err == nil {
		err = e2
	}
	return err
}

// SetReadDeadline and SetWriteDeadline are what http.ResponseController calls.
func (w *leanResponse) SetReadDeadline(t time.Time) error  { return w.conn.rwc.SetReadDeadline(t) }
func (w *leanResponse) SetWriteDeadline(t time.Time) error { return w.conn.rwc.SetWriteDeadline(t) }

func (w *leanResponse) finishRequest() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = w.w.Flush()
	w.release()
	w.cw.close()
	_ = w.conn.bufw.Flush()
}

func (w *leanResponse) shouldReuseConnection() bool {
	if w.closeAfter {
		return false
	}
	if w.req.Method != http.MethodHead && w.contentLength != -1 && bodyAllowedForStatus(w.status) && w.contentLength != w.written {
		return false
	}
	return w.conn.werr == nil
}

func (w *leanResponse) declareTrailer(k string) {
	k = http.CanonicalHeaderKey(k)
	if !httpguts.ValidTrailerHeader(k) {
		return
	}
	w.trailers = append(w.trailers, k)
}

func (w *leanResponse) finalTrailers() http.Header {
	var t http.Header
	for k, vv := range w.handlerHeader {
		if kk, found := strings.CutPrefix(k, http.TrailerPrefix); found {
			if t == nil {
				t = make(http.Header)
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailers {
		if t == nil {
			t = make(http.Header)
		}
		for _, v := range w.handlerHeader[k] {
			t.Add(k, v)
		}
	}
	return t
}

func (cw *leanChunkWriter) Write(p []byte) (n int, err error) {
	if !cw.wroteHeader {
		cw.writeHeader(p)
	}
	if cw.res.req.Method == http.MethodHead {
		return len(p), nil
	}
	bw := cw.res.conn.bufw
	if cw.chunking {
		var hex [16]byte
		_, err = bw.Write(append(strconv.AppendInt(hex[:0], int64(len(p)), 16), '\r', '\n'))
		if err != nil {
			_ = cw.res.conn.rwc.Close()
			return
		}
	}
	n, err = bw.Write(p)
	if cw.chunking && err == nil {
		_, err = bw.Write(crlf)
	}
	if err != nil {
		_ = cw.res.conn.rwc.Close()
	}
	return
}

func (cw *leanChunkWriter) flush() error {
	if !cw.wroteHeader {
		cw.writeHeader(nil)
	}
	return cw.res.conn.bufw.Flush()
}

func (cw *leanChunkWriter) close() {
	if !cw.wroteHeader {
		cw.writeHeader(nil)
	}
	if cw.chunking {
		bw := cw.res.conn.bufw
		_, _ = bw.WriteString("0\r\n")
		if trailers := cw.res.finalTrailers(); trailers != nil {
			_ = trailers.Write(bw)
		}
		_, _ = bw.Write(crlf)
	}
}

type extraHeader struct {
	contentType      string
	connection       string
	transferEncoding string
	date             []byte
	contentLength    []byte
}

var extraHeaderKeys = [][]byte{[]byte("Content-Type"), []byte("Connection"), []byte("Transfer-Encoding")}

var (
	headerContentLength = []byte("Content-Length: ")
	headerDate          = []byte("Date: ")
)

func (h extraHeader) Write(w *bufio.Writer) {
	if h.date != nil {
		_, _ = w.Write(headerDate)
		_, _ = w.Write(h.date)
		_, _ = w.Write(crlf)
	}
	if h.contentLength != nil {
		_, _ = w.Write(headerContentLength)
		_, _ = w.Write(h.contentLength)
		_, _ = w.Write(crlf)
	}
	for i, v := range []string{h.contentType, h.connection, h.transferEncoding} {
		if v != "" {
			_, _ = w.Write(extraHeaderKeys[i])
			_, _ = w.Write(colonSpace)
			_, _ = w.WriteString(v)
			_, _ = w.Write(crlf)
		}
	}
}

// writeHeader is net/http's chunkWriter.writeHeader for an HTTP/1.1 request without a body.
func (cw *leanChunkWriter) writeHeader(p []byte) {
	if cw.wroteHeader {
		return
	}
	cw.wroteHeader = true

	w := cw.res
	keepAlivesEnabled := !w.conn.draining()
	isHEAD := w.req.Method == http.MethodHead

	header := cw.header
	owned := header != nil
	if !owned {
		header = w.handlerHeader
	}
	var excludeHeader map[string]bool
	delHeader := func(key string) {
		if owned {
			header.Del(key)
			return
		}
		if _, ok := header[key]; !ok {
			return
		}
		if excludeHeader == nil {
			excludeHeader = make(map[string]bool)
		}
		excludeHeader[key] = true
	}
	var setHeader extraHeader

	trailers := false
	for k := range cw.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			if excludeHeader == nil {
				excludeHeader = make(map[string]bool)
			}
			excludeHeader[k] = true
			trailers = true
		}
	}
	for _, v := range cw.header["Trailer"] {
		trailers = true
		foreachHeaderElement(v, w.declareTrailer)
	}

	te := headerGet(header, "Transfer-Encoding")
	hasTE := te != ""

	if w.handlerDone && !trailers && !hasTE && bodyAllowedForStatus(w.status) && !headerHas(header, "Content-Length") && (!isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		setHeader.contentLength = strconv.AppendInt(w.clenBuf[:0], int64(len(p)), 10)
	}

	hasCL := w.contentLength != -1

	if w.wantsClose {
		w.closeAfter = true
	}
	if headerGet(header, "Connection") == "close" || !keepAlivesEnabled {
		w.closeAfter = true
	}

	code := w.status
	if bodyAllowedForStatus(code) {
		_, haveType := header["Content-Type"]
		ce := header.Get("Content-Encoding")
		hasCE := len(ce) > 0
		if !hasCE && !haveType && !hasTE && len(p) > 0 {
			setHeader.contentType = http.DetectContentType(p)
		}
	} else {
		for _, k := range suppressedHeaders(code) {
			delHeader(k)
		}
	}

	if !headerHas(header, "Date") {
		setHeader.date = time.Now().UTC().AppendFormat(w.dateBuf[:0], http.TimeFormat)
	}

	if hasCL && hasTE && te != "identity" {
		w.conn.logf("http: WriteHeader called with both Transfer-Encoding of %q and a Content-Length of %d", te, w.contentLength)
		delHeader("Content-Length")
		hasCL = false
	}

	switch {
	case isHEAD || !bodyAllowedForStatus(code) || code == http.StatusNoContent:
		delHeader("Transfer-Encoding")
	case hasCL:
		delHeader("Transfer-Encoding")
	case hasTE && te == "identity":
		cw.chunking = false
		w.closeAfter = true
		delHeader("Transfer-Encoding")
	default:
		cw.chunking = true
		setHeader.transferEncoding = "chunked"
		if hasTE && te == "chunked" {
			delHeader("Transfer-Encoding")
		}
	}
	if cw.chunking {
		delHeader("Content-Length")
	}

	delConnectionHeader := w.closeAfter &&
		(!keepAlivesEnabled || !hasToken(headerGet(cw.header, "Connection"), "close")) &&
		!isProtocolSwitchResponse(w.status, header)
	if delConnectionHeader {
		delHeader("Connection")
		setHeader.connection = "close"
	}

	bw := w.conn.bufw
	writeStatusLine(bw, true, code, w.statusBuf[:])
	// Without a snapshot, the handler's map is what net/http's snapshot would hold: either the
	// handler never called Header (then it is empty), or finalNow wrote it at WriteHeader.
	_ = header.WriteSubset(bw, excludeHeader)
	setHeader.Write(bw)
	_, _ = bw.Write(crlf)
}

func writeStatusLine(bw *bufio.Writer, is11 bool, code int, scratch []byte) {
	if is11 {
		_, _ = bw.WriteString("HTTP/1.1 ")
	} else {
		_, _ = bw.WriteString("HTTP/1.0 ")
	}
	if text := http.StatusText(code); text != "" {
		_, _ = bw.Write(strconv.AppendInt(scratch[:0], int64(code), 10))
		_ = bw.WriteByte(' ')
		_, _ = bw.WriteString(text)
		_, _ = bw.WriteString("\r\n")
	} else {
		_, _ = fmt.Fprintf(bw, "%03d status code %d\r\n", code, code)
	}
}

func foreachHeaderElement(v string, fn func(string)) {
	v = strings.TrimSpace(v)
	if v == "" {
		return
	}
	if !strings.Contains(v, ",") {
		fn(v)
		return
	}
	for f := range strings.SplitSeq(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			fn(f)
		}
	}
}

func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199:
		return false
	case status == 204:
		return false
	case status == 304:
		return false
	}
	return true
}

var (
	suppressedHeaders304    = []string{"Content-Type", "Content-Length", "Transfer-Encoding"}
	suppressedHeadersNoBody = []string{"Content-Length", "Transfer-Encoding"}
	excludedHeadersNoBody   = map[string]bool{"Content-Length": true, "Transfer-Encoding": true}
)

func suppressedHeaders(status int) []string {
	switch {
	case status == 304:
		return suppressedHeaders304
	case !bodyAllowedForStatus(status):
		return suppressedHeadersNoBody
	}
	return nil
}

func isProtocolSwitchResponse(code int, h http.Header) bool {
	return code == http.StatusSwitchingProtocols && isProtocolSwitchHeader(h)
}

func isProtocolSwitchHeader(h http.Header) bool {
	return h.Get("Upgrade") != "" && httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade")
}

// headerGet and headerHas are net/http's Header.get and has: the canonical key, no
// canonicalization.
func headerGet(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func headerHas(h http.Header, key string) bool {
	_, ok := h[key]
	return ok
}

// hasToken is net/http's: whether token appears in v as a comma/space separated token, in any case.
func hasToken(v, token string) bool {
	if len(token) > len(v) || token == "" {
		return false
	}
	if v == token {
		return true
	}
	for sp := 0; sp <= len(v)-len(token); sp++ {
		if b := v[sp]; b != token[0] && b|0x20 != token[0] {
			continue
		}
		if sp > 0 && !isTokenBoundary(v[sp-1]) {
			continue
		}
		if endPos := sp + len(token); endPos != len(v) && !isTokenBoundary(v[endPos]) {
			continue
		}
		if strings.EqualFold(v[sp:sp+len(token)], token) {
			return true
		}
	}
	return false
}

func isTokenBoundary(b byte) bool { return b == ' ' || b == ',' || b == '\t' }

func relevantCaller() runtime.Frame {
	pc := make([]uintptr, 16)
	n := runtime.Callers(1, pc)
	frames := runtime.CallersFrames(pc[:n])
	for {
		frame, more := frames.Next()
		if !strings.HasPrefix(frame.Function, "net/http.") && !strings.HasSuffix(frame.Function, "server.relevantCaller") &&
			!strings.Contains(frame.Function, "server.(*leanResponse)") {
			return frame
		}
		if !more {
			return frame
		}
	}
}

var _ io.StringWriter = (*leanResponse)(nil)
