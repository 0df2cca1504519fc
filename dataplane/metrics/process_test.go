package metrics

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

func TestHandshakeReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{context.DeadlineExceeded, "timeout"},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, "timeout"},
		{io.EOF, "client_closed"},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, "client_closed"},
		{errors.New("tls: no certificates configured"), "unknown_server_name"},
		{fmt.Errorf("tls: client offered only unsupported versions: %x", []uint16{0x301}), "protocol_version"},
		{errors.New("tls: no cipher suite supported by both client and server; client offered: [5]"), "no_shared_cipher"},
		{tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, "not_tls"},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}, "client_alert"},
		{errors.New("tls: something new"), "_other"},
	} {
		if got := handshakeReasons[handshakeReason(tc.err)]; got != tc.want {
			t.Errorf("%v: %s, want %s", tc.err, got, tc.want)
		}
	}
}
