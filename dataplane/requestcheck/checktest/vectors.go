// Package checktest holds the raw-request vectors of the strict request checks and the helpers to
// drive them, shared by the requestcheck unit tests and the full-stack server tests.
package checktest

import (
	"strings"
)

// Vector is one raw request and what the proxy must do with it.
type Vector struct {
	Name string
	Raw  string
	// Status expected on the wire.
	Status int
	// Forwarded is true when the upstream must see exactly one request; false when it must see
	// no byte at all and the connection must be closed after the answer.
	Forwarded bool
}

const get = "GET / HTTP/1.1\r\nHost: app.example\r\n"

func reject(name, raw string, status int) Vector { return Vector{name, raw, status, false} }
func accept(name, raw string) Vector             { return Vector{name, raw, 200, true} }

// Vectors are refused and accepted requests. Refused ones cover every rule of security-defaults.md
// that Go's net/http does not enforce itself, and the chunked-body framing.
var Vectors = []Vector{
	// Framing: Content-Length and Transfer-Encoding.
	reject("CL and TE", "POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
	reject("TE and CL", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400),
	reject("duplicate CL identical", "POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
	reject("duplicate CL different", "POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
	reject("CL list", "POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 3, 3\r\n\r\nabc", 400),
	reject("CL negative", "POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: -1\r\n\r\n", 400),
	reject("CL plus sign", "POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: +3\r\n\r\nabc", 400),
	reject("CL hex", "POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 0x3\r\n\r\nabc", 400),
	reject("TE gzip", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
	reject("TE chunked twice in list", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
	reject("TE gzip then chunked", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400),
	reject("TE identity", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: identity\r\n\r\n", 400),
	reject("TE duplicated", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
	reject("TE on HTTP/1.0", "POST / HTTP/1.0\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
	reject("TE with vertical tab", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n", 400),
	// Line endings, folding, control characters.
	reject("obs-fold", get+"X-A: one\r\n two\r\n\r\n", 400),
	reject("obs-fold with tab", get+"X-A: one\r\n\ttwo\r\n\r\n", 400),
	reject("bare LF everywhere", "GET / HTTP/1.1\nHost: app.example\n\n", 400),
	reject("bare LF in header", get+"X-A: 1\n\r\n", 400),
	reject("bare CR in value", get+"X-A: a\rb\r\n\r\n", 400),
	reject("NUL in value", get+"X-A: a\x00b\r\n\r\n", 400),
	reject("control char in value", get+"X-A: a\x01b\r\n\r\n", 400),
	reject("DEL in value", get+"X-A: a\x7fb\r\n\r\n", 400),
	reject("too many blank lines first", strings.Repeat("\r\n", 5)+get+"\r\n", 400),
	// Header names.
	reject("space before colon", get+"X-A : 1\r\n\r\n", 400),
	reject("tab before colon", get+"X-A\t: 1\r\n\r\n", 400),
	reject("space before colon on Host", "GET / HTTP/1.1\r\nHost : app.example\r\n\r\n", 400),
	reject("underscore in name", get+"X_Forwarded_For: 10.0.0.1\r\n\r\n", 400),
	reject("invalid name char", get+"X(A): 1\r\n\r\n", 400),
	reject("empty name", get+": 1\r\n\r\n", 400),
	reject("line without colon", get+"X-A\r\n\r\n", 400),
	// Host.
	reject("duplicate Host", get+"Host: other.example\r\n\r\n", 400),
	reject("missing Host on 1.1", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400),
	reject("Host with userinfo", "GET / HTTP/1.1\r\nHost: user@app.example\r\n\r\n", 400),
	reject("Host with path", "GET / HTTP/1.1\r\nHost: app.example/x\r\n\r\n", 400),
	reject("absolute-form Host mismatch", "GET http://evil.example/ HTTP/1.1\r\nHost: app.example\r\n\r\n", 400),
	reject("absolute-form userinfo", "GET http://u@app.example/ HTTP/1.1\r\nHost: app.example\r\n\r\n", 400),
	// Request line.
	reject("HTTP/1.2", "GET / HTTP/1.2\r\nHost: app.example\r\n\r\n", 505),
	reject("HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: app.example\r\n\r\n", 505),
	reject("HTTP/0.9 style", "GET /\r\n\r\n", 400),
	reject("lower-case version", "GET / http/1.1\r\nHost: app.example\r\n\r\n", 400),
	reject("double space", "GET  / HTTP/1.1\r\nHost: app.example\r\n\r\n", 400),
	reject("trailing garbage after version", "GET / HTTP/1.1 x\r\nHost: app.example\r\n\r\n", 400),
	reject("CONNECT", "CONNECT app.example:443 HTTP/1.1\r\nHost: app.example:443\r\n\r\n", 400),
	reject("asterisk with GET", "GET * HTTP/1.1\r\nHost: app.example\r\n\r\n", 400),
	reject("fragment in target", "GET /a#/../admin HTTP/1.1\r\nHost: app.example\r\n\r\n", 400),
	reject("control char in target", "GET /a\x01b HTTP/1.1\r\nHost: app.example\r\n\r\n", 400),
	reject("non-ASCII in target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: app.example\r\n\r\n", 400),
	reject("invalid method char", "GE(T / HTTP/1.1\r\nHost: app.example\r\n\r\n", 400),
	// Sizes.
	reject("target over 8 KiB", "GET /"+strings.Repeat("a", 8<<10)+" HTTP/1.1\r\nHost: app.example\r\n\r\n", 414),
	reject("header section over 64 KiB", get+strings.Repeat("X-Filler: "+strings.Repeat("v", 1000)+"\r\n", 66)+"\r\n", 431),
	reject("more than 100 fields", get+strings.Repeat("X-A: 1\r\n", 101)+"\r\n", 431),
	// Chunked bodies.
	reject("chunk size not hex", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
	reject("chunk size 0x prefix", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400),
	reject("chunk size bare LF", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400),
	reject("chunk size with space", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 400),
	reject("chunk size overflow", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n", 400),
	reject("chunk extension with bare LF", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\nc\r\nabc\r\n0\r\n\r\n", 400),
	reject("chunk extension with control char", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\x01\r\nabc\r\n0\r\n\r\n", 400),
	reject("chunk data too long", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", 400),
	reject("second chunk bad", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nxyz\r\n0\r\n\r\n", 400),
	reject("trailer with Content-Length", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nContent-Length: 9\r\n\r\n", 400),
	reject("trailer obs-fold", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: a\r\n b\r\n\r\n", 400),

	accept("simple GET", get+"\r\n"),
	accept("POST with Content-Length", "POST /submit HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\nhello"),
	accept("chunked with extension and trailer", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n5;name=\"v\"\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n"),
	accept("TE is case-insensitive", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"),
	accept("HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n"),
	accept("absolute-form matching Host", "GET http://APP.example:80/ HTTP/1.1\r\nHost: app.example\r\n\r\n"),
	accept("one blank line first", "\r\n"+get+"\r\n"),
	accept("obs-text and tab in value", get+"X-A: caf\xe9\tau lait\r\n\r\n"),
	accept("Host with port", "GET / HTTP/1.1\r\nHost: app.example:8080\r\n\r\n"),
	accept("100 fields", get+strings.Repeat("X-A: 1\r\n", 99)+"\r\n"),
}
