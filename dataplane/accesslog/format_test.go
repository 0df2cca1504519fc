package accesslog

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/portico-dev/portico/dataplane/routing"
)

func sampleRecord() record {
	route := &routing.Route{Namespace: "team", Name: "web", SourceKind: "Ingress", SourceName: "web"}
	rule := &routing.Rule{Route: route, Index: 1, Name: "api"}
	return record{
		start:    time.Date(2026, 3, 1, 12, 30, 45, 123456789, time.UTC),
		duration: 12345678 * time.Nanosecond, method: "GET", scheme: "https", host: "shop.example", path: "/api/x",
		proto: "HTTP/2.0", status: 200, bytesIn: 12, bytesOut: 345, client: netip.MustParseAddr("203.0.113.7"),
		peer: "10.0.0.1:51234", xff: "203.0.113.7", userAgent: "curl/8.5.0", requestID: "abc-123",
		traceID: [16]byte{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		spanID:  [8]byte{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		tenant:  "acme", rule: rule, backend: routing.BackendKey{Namespace: "team", Name: "api", Port: 8080},
		endpoint: netip.MustParseAddrPort("10.1.2.3:8080"), attempts: 1, upstreamStatus: 200,
		upstreamLatency: 11*time.Millisecond + 500*time.Microsecond, tlsVersion: 0x0304, sni: "shop.example",
	}
}

func TestJSONLine(t *testing.T) {
	rec := sampleRecord()
	line := string(appendJSON(nil, &rec))
	want := `{"start_time":"2026-03-01T12:30:45.123456Z","duration_ms":12.346,"method":"GET","scheme":"https",` +
		`"host":"shop.example","path":"/api/x","protocol":"HTTP/2.0","status":200,"bytes_in":12,"bytes_out":345,` +
		`"client_address":"203.0.113.7","peer_address":"10.0.0.1:51234","x_forwarded_for":"203.0.113.7",` +
		`"user_agent":"curl/8.5.0","request_id":"abc-123","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",` +
		`"span_id":"00f067aa0ba902b7","tenant":"acme","namespace":"team","route":"web","rule_index":1,` +
		`"rule_name":"api","source":"Ingress/web","backend":"team/api:8080","upstream":"10.1.2.3:8080",` +
		`"upstream_status":200,"upstream_latency_ms":11.500,"attempts":1,"tls_version":"TLSv1.3",` +
		`"sni":"shop.example","reason":"","detail":""}` + "\n"
	if diff := cmp.Diff(want, line); diff != "" {
		t.Errorf("JSON line (-want +got):\n%s", diff)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if len(m) != len(Fields) {
		t.Errorf("%d fields, Fields lists %d", len(m), len(Fields))
	}
	for _, f := range Fields {
		if _, ok := m[f]; !ok {
			t.Errorf("field %s missing", f)
		}
	}
}

func TestJSONLineOfRefusedRequest(t *testing.T) {
	rec := record{start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), status: 400, peer: "192.0.2.1:4000",
		client: netip.MustParseAddr("192.0.2.1"), tenant: "acme", reason: "rejected_request", detail: "duplicate Host"}
	var m map[string]any
	if err := json.Unmarshal(appendJSON(nil, &rec), &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"rule_index": nil, "upstream_status": nil, "upstream_latency_ms": nil,
		"trace_id": "", "backend": "", "upstream": "", "method": "", "status": 400.0, "detail": "duplicate Host"} {
		if !cmp.Equal(m[k], want) {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
}

func TestTextLine(t *testing.T) {
	rec := sampleRecord()
	want := `203.0.113.7 - - [01/Mar/2026:12:30:45.123 +0000] "GET /api/x HTTP/2.0" 200 345 "curl/8.5.0" ` +
		`duration_ms=12.346 request_id=abc-123 scheme=https host="shop.example" bytes_in=12 peer=10.0.0.1:51234 ` +
		`xff="203.0.113.7" tenant=acme namespace=team route=web rule=1 rule_name=api source=Ingress/web ` +
		`backend=team/api:8080 upstream=10.1.2.3:8080 upstream_status=200 upstream_latency_ms=11.500 attempts=1 ` +
		`tls=TLSv1.3 sni="shop.example" trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7 ` +
		`reason=- detail="-"` + "\n"
	if diff := cmp.Diff(want, string(appendText(nil, &rec))); diff != "" {
		t.Errorf("text line (-want +got):\n%s", diff)
	}
	empty := record{start: rec.start, status: 400, reason: "rejected_request", detail: "duplicate Host"}
	got := string(appendText(nil, &empty))
	if !strings.HasPrefix(got, `- - - [01/Mar/2026:12:30:45.123 +0000] "- - -" 400 0 "-" `) ||
		!strings.Contains(got, ` rule=- `) || !strings.HasSuffix(got, ` reason=rejected_request detail="duplicate Host"`+"\n") {
		t.Errorf("text line of a refused request: %q", got)
	}
}

// Client-supplied values cannot end a line or forge a field in either format.
func TestEscaping(t *testing.T) {
	rec := sampleRecord()
	rec.userAgent = "evil\"\n{\"status\":200} \\ \x01 \xff é \u2028"
	rec.xff = "1.2.3.4\r\nforged=1"
	line := appendJSON(nil, &rec)
	if n := strings.Count(string(line), "\n"); n != 1 {
		t.Fatalf("JSON line has %d newlines: %q", n, line)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, line)
	}
	if ua := m["user_agent"]; ua != "evil\"\n{\"status\":200} \\ \x01 \ufffd é \u2028" {
		t.Errorf("user agent decoded as %q", ua)
	}
	text := string(appendText(nil, &rec))
	if n := strings.Count(text, "\n"); n != 1 {
		t.Fatalf("text line has %d newlines: %q", n, text)
	}
	for _, want := range []string{`"evil\"\x0a{\"status\":200} \\ \x01 \xff \xc3\xa9 \xe2\x80\xa8"`, `xff="1.2.3.4\x0d\x0aforged=1"`} {
		if !strings.Contains(text, want) {
			t.Errorf("text line lacks %s:\n%s", want, text)
		}
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"json": JSON, "JSON": JSON, "": JSON, "text": Text, "Text": Text} {
		if f, ok := ParseFormat(in); !ok || f != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, f, ok)
		}
	}
	if _, ok := ParseFormat("yaml"); ok {
		t.Error("yaml accepted")
	}
}
