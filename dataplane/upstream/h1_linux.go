package upstream

import "syscall"

const canPeek = true

// peek looks at the socket without waiting and without consuming: EAGAIN means nothing arrived.
func (pc *h1Conn) peek(fd uintptr) bool {
	n, _, err := syscall.Recvfrom(int(fd), pc.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		pc.dead = false
	case err != nil, n >= 0:
		pc.dead = true // an error, the upstream's FIN (n == 0), or bytes nobody asked for
	}
	return true // never wait for readiness
}
