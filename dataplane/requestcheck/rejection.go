// Package requestcheck validates HTTP/1.x requests on the raw bytes of a connection, before Go's
// net/http parses them, and answers what it refuses itself.
//
// net/http is lenient where a proxy must not be (see security-defaults.md): it serves requests
// with both Content-Length and Transfer-Encoding, accepts duplicate Content-Length, obs-fold, bare
// LF line endings and "HTTP/1.2", and forwards whatever it parsed. Two parsers that disagree about
// where a request ends are the root of request smuggling, so the proxy must never forward what a
// strict parser would have refused. Conn sits between the socket and net/http: it parses every
// request head (keep-alive and pipelined ones included) and every chunked body, releases bytes to
// net/http only once they are validated, and on a violation answers 400 (414, 431, 505) itself and
// closes the connection. net/http, and so the upstream, never sees a byte of a refused head.
package requestcheck

import (
	"fmt"
	"net/http"
	"strconv"
)

// ReasonRejected is the reason every refusal carries, for access logs and metrics.
const ReasonRejected = "rejected_request"

// Rejection describes a refused request. It is also the error a handler reading a chunked body
// gets when a chunk is malformed; the connection answers and closes on its own then.
type Rejection struct {
	// Status is 400, 414, 431 or 505.
	Status int
	// Detail is a short constant phrase ("duplicate Content-Length"), safe to log and to show.
	Detail string
	// InBody is true when the head was accepted and the body framing was not.
	InBody bool
}

func (r *Rejection) Error() string {
	return fmt.Sprintf("request rejected (%d): %s", r.Status, r.Detail)
}

// Reason is ReasonRejected; it lets callers treat a Rejection like other proxy-made answers.
func (r *Rejection) Reason() string { return ReasonRejected }

// response renders the answer written on the raw connection. It names the reason and the detail,
// both constants, and nothing the client sent.
func (r *Rejection) response() []byte {
	text := http.StatusText(r.Status)
	body := strconv.Itoa(r.Status) + " " + text + ": " + ReasonRejected + " (" + r.Detail + ")\n"
	return []byte("HTTP/1.1 " + strconv.Itoa(r.Status) + " " + text + "\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"X-Content-Type-Options: nosniff\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		"Connection: close\r\n\r\n" + body)
}

func bad(detail string) *Rejection { return &Rejection{Status: http.StatusBadRequest, Detail: detail} }

// Refusals are package values: they carry no request data and cost nothing to return.
var (
	errBareLF            = bad("bare LF line ending")
	errBareCR            = bad("bare CR in line")
	errRequestLine       = bad("malformed request line")
	errMethod            = bad("invalid method")
	errConnect           = bad("CONNECT is not served")
	errTargetChar        = bad("invalid character in request target")
	errTargetForm        = bad("unsupported request-target form")
	errVersion           = bad("malformed HTTP version")
	errObsFold           = bad("obsolete line folding")
	errNoColon           = bad("header line without colon")
	errSpaceBeforeColon  = bad("whitespace before colon")
	errHeaderName        = bad("invalid header name")
	errUnderscore        = bad("underscore in header name")
	errHeaderValue       = bad("control character in header value")
	errDupContentLength  = bad("duplicate Content-Length")
	errContentLength     = bad("malformed Content-Length")
	errDupTE             = bad("duplicate Transfer-Encoding")
	errTE                = bad("Transfer-Encoding other than chunked")
	errTEOnHTTP10        = bad("Transfer-Encoding on HTTP/1.0")
	errCLAndTE           = bad("both Content-Length and Transfer-Encoding")
	errDupHost           = bad("duplicate Host")
	errNoHost            = bad("missing Host")
	errHost              = bad("malformed Host")
	errHostMismatch      = bad("absolute-form target does not match Host")
	errChunkLine         = bad("malformed chunk size line")
	errChunkTooLong      = bad("chunk size line too long")
	errChunkExt          = bad("invalid chunk extension")
	errChunkCRLF         = bad("chunk data not followed by CRLF")
	errTrailer           = bad("forbidden or malformed trailer field")
	errTrailerTooLarge   = bad("trailer section too large")
	errTooManyBlankLines = bad("too many empty lines before request line")
	errVersionNotServed  = &Rejection{Status: http.StatusHTTPVersionNotSupported, Detail: "HTTP version not supported"}
	errTargetTooLong     = &Rejection{Status: http.StatusRequestURITooLong, Detail: "request target too long"}
	errHeadersTooLarge   = &Rejection{Status: http.StatusRequestHeaderFieldsTooLarge, Detail: "header section too large"}
	errTooManyFields     = &Rejection{Status: http.StatusRequestHeaderFieldsTooLarge, Detail: "too many header fields"}
)

// Limits bound what a request head may hold. The zero value means the defaults of
// security-defaults.md.
type Limits struct {
	// MaxTarget is the longest request target (414 beyond); 8 KiB.
	MaxTarget int
	// MaxHeaderBytes bounds the header section after the request line (431 beyond); 64 KiB.
	MaxHeaderBytes int
	// MaxFields bounds the number of header fields (431 beyond); 100.
	MaxFields int
}

func (l Limits) withDefaults() Limits {
	if l.MaxTarget <= 0 {
		l.MaxTarget = 8 << 10
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 64 << 10
	}
	if l.MaxFields <= 0 {
		l.MaxFields = 100
	}
	return l
}
