package accesslog

import (
	"encoding/hex"
	"strconv"
	"time"
	"unicode/utf8"
)

// Fields are the keys of a JSON line, in the order they are written. Every line has all of them:
// strings are "" and rule_index, upstream_status and upstream_latency_ms are null when they do not
// apply, so a log pipeline sees one schema. Durations are milliseconds (microsecond precision),
// bytes_in and bytes_out count body bytes, client_address is the client as far as the proxy
// trusts X-Forwarded-For (--trusted-hops), peer_address the TCP peer.
var Fields = []string{
	"start_time", "duration_ms", "method", "scheme", "host", "path", "protocol", "status", "bytes_in", "bytes_out",
	"client_address", "peer_address", "x_forwarded_for", "user_agent", "request_id", "trace_id", "span_id",
	"tenant", "namespace", "route", "rule_index", "rule_name", "source", "backend", "upstream", "upstream_status",
	"upstream_latency_ms", "attempts", "tls_version", "sni", "reason", "detail",
}

const (
	jsonTime = "2006-01-02T15:04:05.000000Z07:00"
	clfTime  = "02/Jan/2006:15:04:05.000 -0700"
)

func appendJSON(b []byte, r *record) []byte {
	b = append(b, `{"start_time":"`...)
	b = r.start.UTC().AppendFormat(b, jsonTime)
	b = append(b, `","duration_ms":`...)
	b = appendMillis(b, r.duration)
	b = jsonField(b, "method", r.method)
	b = jsonField(b, "scheme", r.scheme)
	b = jsonField(b, "host", r.host)
	b = jsonField(b, "path", r.path)
	b = jsonField(b, "protocol", r.proto)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.status), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, r.bytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, r.bytesOut, 10)
	b = append(b, `,"client_address":"`...)
	if r.client.IsValid() {
		b = r.client.AppendTo(b)
	}
	b = append(b, '"')
	b = jsonField(b, "peer_address", r.peer)
	b = jsonField(b, "x_forwarded_for", r.xff)
	b = jsonField(b, "user_agent", r.userAgent)
	b = jsonField(b, "request_id", r.requestID)
	b = append(b, `,"trace_id":"`...)
	b = appendHexID(b, r.traceID[:])
	b = append(b, `","span_id":"`...)
	b = appendHexID(b, r.spanID[:])
	b = append(b, '"')
	b = jsonField(b, "tenant", r.tenant)
	ns, route, ruleName, source := ruleFields(r)
	b = jsonField(b, "namespace", ns)
	b = jsonField(b, "route", route)
	b = append(b, `,"rule_index":`...)
	if r.rule != nil {
		b = strconv.AppendInt(b, int64(r.rule.Index), 10)
	} else {
		b = append(b, "null"...)
	}
	b = jsonField(b, "rule_name", ruleName)
	b = jsonField(b, "source", source)
	b = append(b, `,"backend":"`...)
	b = appendBackend(b, r)
	b = append(b, `","upstream":"`...)
	if r.endpoint.IsValid() {
		b = r.endpoint.AppendTo(b)
	}
	b = append(b, `","upstream_status":`...)
	if r.upstreamStatus != 0 {
		b = strconv.AppendInt(b, int64(r.upstreamStatus), 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"upstream_latency_ms":`...)
	if r.attempts > 0 {
		b = appendMillis(b, r.upstreamLatency)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(r.attempts), 10)
	b = jsonField(b, "tls_version", tlsVersionName(r.tlsVersion))
	b = jsonField(b, "sni", r.sni)
	b = jsonField(b, "reason", r.reason)
	b = jsonField(b, "detail", r.detail)
	return append(b, "}\n"...)
}

// appendText writes the common log format ("client - - [time] "request" status bytes") followed
// by the user agent and key=value fields. Values that can hold spaces or client input are quoted
// and escaped nginx-style (\" \\ \xHH); "-" stands for an empty value.
func appendText(b []byte, r *record) []byte {
	if r.client.IsValid() {
		b = r.client.AppendTo(b)
	} else {
		b = append(b, '-')
	}
	b = append(b, " - - ["...)
	b = r.start.UTC().AppendFormat(b, clfTime)
	b = append(b, `] "`...)
	b = textEscaped(b, dash(r.method))
	b = append(b, ' ')
	b = textEscaped(b, dash(r.path))
	b = append(b, ' ')
	b = textEscaped(b, dash(r.proto))
	b = append(b, `" `...)
	b = strconv.AppendInt(b, int64(r.status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.bytesOut, 10)
	b = append(b, ` "`...)
	b = textEscaped(b, dash(r.userAgent))
	b = append(b, `" duration_ms=`...)
	b = appendMillis(b, r.duration)
	b = textField(b, "request_id", r.requestID)
	b = textField(b, "scheme", r.scheme)
	b = textQuoted(b, "host", r.host)
	b = append(b, " bytes_in="...)
	b = strconv.AppendInt(b, r.bytesIn, 10)
	b = textField(b, "peer", r.peer)
	b = textQuoted(b, "xff", r.xff)
	b = textField(b, "tenant", r.tenant)
	ns, route, ruleName, source := ruleFields(r)
	b = textField(b, "namespace", ns)
	b = textField(b, "route", route)
	b = append(b, " rule="...)
	if r.rule != nil {
		b = strconv.AppendInt(b, int64(r.rule.Index), 10)
	} else {
		b = append(b, '-')
	}
	b = textField(b, "rule_name", ruleName)
	b = textField(b, "source", source)
	b = append(b, " backend="...)
	if r.backend.Name == "" {
		b = append(b, '-')
	} else {
		b = appendBackend(b, r)
	}
	b = append(b, " upstream="...)
	if r.endpoint.IsValid() {
		b = r.endpoint.AppendTo(b)
	} else {
		b = append(b, '-')
	}
	b = append(b, " upstream_status="...)
	if r.upstreamStatus != 0 {
		b = strconv.AppendInt(b, int64(r.upstreamStatus), 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, " upstream_latency_ms="...)
	if r.attempts > 0 {
		b = appendMillis(b, r.upstreamLatency)
	} else {
		b = append(b, '-')
	}
	b = append(b, " attempts="...)
	b = strconv.AppendInt(b, int64(r.attempts), 10)
	b = textField(b, "tls", tlsVersionName(r.tlsVersion))
	b = textQuoted(b, "sni", r.sni)
	b = append(b, " trace_id="...)
	b = dashHex(b, r.traceID[:])
	b = append(b, " span_id="...)
	b = dashHex(b, r.spanID[:])
	b = textField(b, "reason", r.reason)
	b = textQuoted(b, "detail", r.detail)
	return append(b, '\n')
}

// ruleFields are the route's namespace and name, the rule's name and the source object
// ("Ingress/web"); all "" when no rule matched.
func ruleFields(r *record) (ns, route, ruleName, source string) {
	if r.rule == nil {
		return "", "", "", ""
	}
	rt := r.rule.Route
	if rt.SourceKind != "" {
		source = rt.SourceKind + "/" + rt.SourceName
	}
	return rt.Namespace, rt.Name, r.rule.Name, source
}

// appendBackend writes "namespace/name:port", or nothing when no backend was chosen.
func appendBackend(b []byte, r *record) []byte {
	k := r.backend
	if k.Name == "" {
		return b
	}
	b = append(b, k.Namespace...)
	b = append(b, '/')
	b = append(b, k.Name...)
	b = append(b, ':')
	return strconv.AppendInt(b, int64(k.Port), 10)
}

func appendMillis(b []byte, d time.Duration) []byte {
	return strconv.AppendFloat(b, float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// appendHexID writes a trace or span ID in hex; an all-zero ID is no ID and writes nothing.
func appendHexID(b []byte, id []byte) []byte {
	if isZero(id) {
		return b
	}
	return hex.AppendEncode(b, id)
}

func dashHex(b []byte, id []byte) []byte {
	if isZero(id) {
		return append(b, '-')
	}
	return hex.AppendEncode(b, id)
}

func isZero(id []byte) bool {
	for _, c := range id {
		if c != 0 {
			return false
		}
	}
	return true
}

func jsonField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, `":`...)
	return jsonString(b, v)
}

const hexDigits = "0123456789abcdef"

// jsonString writes s as a JSON string: quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced by U+FFFD, U+2028 and U+2029 escaped (they end lines in JavaScript).
func jsonString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// textField writes " name=value" for values that hold no spaces or client input.
func textField(b []byte, name, v string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, '=')
	return textEscaped(b, dash(v))
}

// textQuoted writes ` name="value"`.
func textQuoted(b []byte, name, v string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, '=', '"')
	b = textEscaped(b, dash(v))
	return append(b, '"')
}

// textEscaped writes s with '"', '\\', control characters and non-ASCII bytes escaped, so that a
// client cannot end a line or a quoted field.
func textEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c >= 0x7f:
			b = append(b, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return b
}
