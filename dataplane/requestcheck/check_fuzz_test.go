package requestcheck_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portico-dev/portico/dataplane/requestcheck"
	"github.com/portico-dev/portico/dataplane/requestcheck/checktest"
)

// scriptConn serves a fixed input in reads of at most step bytes, then EOF; writes are kept.
type scriptConn struct {
	in   []byte
	step int
	out  bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.step)], c.in)
	c.in = c.in[n:]
	return n, nil
}
func (c *scriptConn) Write(p []byte) (int, error)      { return c.out.Write(p) }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzConn: the checks never panic and only ever release a prefix of what arrived (less empty lines before a request); every request
// they release that net/http parses carries at most one framing header (one Content-Length
// or one Transfer-Encoding: chunked), so the proxy and any upstream agree on where it ends.
func FuzzConn(f *testing.F) {
	for _, v := range checktest.Vectors {
		f.Add([]byte(v.Raw), uint8(0))
		f.Add([]byte(v.Raw+v.Raw), uint8(7))
	}
	f.Fuzz(checkConnInput)
}

func checkConnInput(t *testing.T, in []byte, step uint8) {
	{
		if len(in) > 64<<10 {
			return
		}
		src := &scriptConn{in: bytes.Clone(in), step: int(step) + 1}
		c := requestcheck.NewConn(src, requestcheck.Options{})
		var released []byte
		buf := make([]byte, 512)
		var err error
		for i := 0; i < 1<<16; i++ {
			var n int
			n, err = c.Read(buf)
			released = append(released, buf[:n]...)
			if err != nil {
				break
			}
		}
		_ = c.Close()
		// Empty lines before a request line are dropped; everything else is passed on as is.
		crlf := []byte("\r\n")
		cut := bytes.ReplaceAll(bytes.TrimSuffix(released, []byte("\r")), crlf, nil)
		if len(released) > len(in) || !bytes.HasPrefix(bytes.ReplaceAll(in, crlf, nil), cut) {
			t.Fatalf("released bytes are not a prefix of the input:\n in %q\nout %q", in, released)
		}
		br := bufio.NewReader(bytes.NewReader(released))
		for {
			req, perr := http.ReadRequest(br)
			if perr != nil {
				// net/http refusing what the checks let through fails closed (it answers 400);
				// the property that matters is below: nothing it accepts is ambiguously framed.
				return
			}
			if len(req.Header["Content-Length"])+len(req.TransferEncoding) > 1 || len(req.Header["Transfer-Encoding"]) > 0 {
				t.Fatalf("released a request with %d Content-Length and %v Transfer-Encoding", len(req.Header["Content-Length"]), req.TransferEncoding)
			}
			if len(req.TransferEncoding) == 1 && !strings.EqualFold(req.TransferEncoding[0], "chunked") {
				t.Fatalf("released Transfer-Encoding %v", req.TransferEncoding)
			}
			if _, berr := io.Copy(io.Discard, req.Body); berr != nil {
				return // a body cut short by the end of the input or by a refusal
			}
		}
	}
}
