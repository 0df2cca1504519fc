package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

// serveLean is a measuring stick, not a proxy: the least a Go HTTP/1.1 proxy loop can do on this
// machine. One goroutine per client connection, a dedicated keep-alive upstream connection, the
// head copied line by line with hop-by-hop and forwarding fields replaced, Content-Length bodies
// only, no checks, no routing. What it costs per request bounds what a lean core for Portico
// (see docs/performance.md) could reach with the same kernel and runtime.
func serveLean(args []string) int {
	fs := flag.NewFlagSet("serve-lean", flag.ExitOnError)
	var httpAddr, httpsAddr, backendAddr, certPath, keyPath string
	fs.StringVar(&httpAddr, "http-addr", "", "")
	fs.StringVar(&httpsAddr, "https-addr", "", "")
	fs.StringVar(&backendAddr, "backend", "", "")
	fs.StringVar(&certPath, "cert", "", "")
	fs.StringVar(&keyPath, "key", "", "")
	_ = fs.Parse(args)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tl, err := net.Listen("tcp", httpsAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tl = tls.NewListener(tl, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	for _, l := range []net.Listener{ln, tl} {
		proto := "http"
		if l == tl {
			proto = "https"
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go leanConn(c, backendAddr, proto)
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	return 0
}

var errLean = errors.New("lean: unsupported message")

func leanConn(c net.Conn, backendAddr, proto string) {
	defer c.Close()
	br, bw := bufio.NewReaderSize(c, 4096), bufio.NewWriterSize(c, 4096)
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	fwd := []byte("X-Forwarded-For: " + host + "\r\nX-Real-Ip: " + host + "\r\nX-Forwarded-Proto: " + proto + "\r\n")
	var up net.Conn
	var ubr *bufio.Reader
	var ubw *bufio.Writer
	defer func() {
		if up != nil {
			up.Close()
		}
	}()
	var id [16]byte
	idHex := make([]byte, 32)
	for {
		if up == nil {
			var err error
			if up, err = net.Dial("tcp", backendAddr); err != nil {
				return
			}
			ubr, ubw = bufio.NewReaderSize(up, 4096), bufio.NewWriterSize(up, 4096)
		}
		reqLen, err := copyHead(ubw, br)
		if err != nil {
			return
		}
		_, _ = ubw.Write(fwd)
		_, _ = rand.Read(id[:])
		hex.Encode(idHex, id[:])
		_, _ = ubw.WriteString("X-Request-Id: ")
		_, _ = ubw.Write(idHex)
		_, _ = ubw.WriteString("\r\nConnection: keep-alive\r\n\r\n")
		if reqLen > 0 {
			if _, err := io.CopyN(ubw, br, reqLen); err != nil {
				return
			}
		}
		if err := ubw.Flush(); err != nil {
			return
		}
		respLen, err := copyHead(bw, ubr)
		if err != nil {
			return
		}
		_, _ = bw.WriteString("\r\n")
		if _, err := io.CopyN(bw, ubr, respLen); err != nil {
			return
		}
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}

var (
	hdrContentLength    = []byte("content-length:")
	hdrTransferEncoding = []byte("transfer-encoding:")
	hdrDrop             = [][]byte{[]byte("connection:"), []byte("keep-alive:"), []byte("x-forwarded-"), []byte("x-real-ip:"),
		[]byte("x-request-id:"), []byte("forwarded:"), []byte("transfer-encoding:"), []byte("te:"), []byte("upgrade:")}
)

// copyHead copies a request or response head up to (not including) the empty line, dropping
// hop-by-hop and forwarding fields, and returns the Content-Length.
func copyHead(w *bufio.Writer, r *bufio.Reader) (int64, error) {
	var n int64
	first := true
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			if first {
				continue
			}
			return n, nil
		}
		if first {
			first = false
			_, _ = w.Write(line)
			continue
		}
		if hasPrefixFold(line, hdrContentLength) {
			v := bytes.TrimSpace(line[len(hdrContentLength):])
			if n, err = strconv.ParseInt(string(v), 10, 64); err != nil || n < 0 {
				return 0, errLean
			}
		}
		drop := false
		for _, d := range hdrDrop {
			if hasPrefixFold(line, d) {
				drop = true
				break
			}
		}
		if hasPrefixFold(line, hdrTransferEncoding) {
			return 0, errLean
		}
		if !drop {
			_, _ = w.Write(line)
		}
	}
}

// hasPrefixFold reports whether b starts with the lower-case ASCII prefix, ignoring case.
func hasPrefixFold(b, prefix []byte) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i, c := range prefix {
		d := b[i]
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if d != c {
			return false
		}
	}
	return true
}
