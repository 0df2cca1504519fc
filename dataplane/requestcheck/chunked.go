package requestcheck

// Chunked bodies (RFC 9112 7.1) are checked as strictly as heads: a chunk-size line that two
// parsers read differently ("5;ext\n", "0x5", "5 ", a huge size that overflows) is a smuggling
// vector just like a duplicate Content-Length.

const (
	// maxChunkLine bounds a chunk-size line including extensions.
	maxChunkLine = 4 << 10
	// maxChunkDigits bounds the hex digits of a chunk size (leading zeros included), so sizes stay
	// far below what an int64 holds.
	maxChunkDigits = 15
	// maxTrailerBytes bounds the trailer section.
	maxTrailerBytes = 16 << 10
)

// parseChunkSize checks "1*HEXDIG [ BWS ";" chunk-ext ]" (CRLF already stripped).
func parseChunkSize(line []byte) (int64, *Rejection) {
	var n int64
	i := 0
	for ; i < len(line) && isHex(line[i]); i++ {
		if i == maxChunkDigits {
			return 0, errChunkLine
		}
		n = n<<4 | int64(unhex(line[i]))
	}
	if i == 0 {
		return 0, errChunkLine
	}
	ext := line[i:]
	if len(ext) == 0 {
		return n, nil
	}
	for len(ext) > 0 && (ext[0] == ' ' || ext[0] == '\t') {
		ext = ext[1:]
	}
	if len(ext) == 0 || ext[0] != ';' {
		return 0, errChunkLine
	}
	// Extensions are ignored by everyone; they only need to be free of anything that could end
	// the line for another parser.
	for _, c := range ext {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return 0, errChunkExt
		}
	}
	return n, nil
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
