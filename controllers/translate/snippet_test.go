package translate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestSnippetHeaders(t *testing.T) {
	h := func(name, value string) gwapiv1.HTTPHeader {
		return gwapiv1.HTTPHeader{Name: gwapiv1.HTTPHeaderName(name), Value: value}
	}
	tests := []struct {
		name     string
		snippet  string
		req      *gwapiv1.HTTPHeaderFilter
		resp     *gwapiv1.HTTPHeaderFilter
		approx   bool
		whyMatch string
	}{
		{name: "empty", snippet: "  \n# only a comment\n"},
		{name: "set, last wins", snippet: `more_set_headers "X-A: 1"; more_set_headers "x-a: 2" 'X-B: two words';`,
			resp: &gwapiv1.HTTPHeaderFilter{Set: []gwapiv1.HTTPHeader{h("X-A", "2"), h("X-B", "two words")}}},
		{name: "unquoted", snippet: "more_set_headers X-Frame-Options:DENY;",
			resp: &gwapiv1.HTTPHeaderFilter{Set: []gwapiv1.HTTPHeader{h("X-Frame-Options", "DENY")}}},
		{name: "clear by empty value", snippet: `more_set_headers "Server:"; more_clear_input_headers Cookie2;`,
			resp: &gwapiv1.HTTPHeaderFilter{Remove: []string{"Server"}}, req: &gwapiv1.HTTPHeaderFilter{Remove: []string{"Cookie2"}}},
		{name: "escaped quote", snippet: `add_header X-Msg "say \"hi\"" always;`,
			resp: &gwapiv1.HTTPHeaderFilter{Add: []gwapiv1.HTTPHeader{h("X-Msg", `say "hi"`)}}},
		{name: "add_header without always", snippet: `add_header X-A b;`,
			resp: &gwapiv1.HTTPHeaderFilter{Add: []gwapiv1.HTTPHeader{h("X-A", "b")}}, approx: true},
		{name: "proxy_set_header empty removes", snippet: `proxy_set_header Accept-Encoding ""; proxy_set_header X-Real-Env prod;`,
			req: &gwapiv1.HTTPHeaderFilter{Set: []gwapiv1.HTTPHeader{h("X-Real-Env", "prod")}, Remove: []string{"Accept-Encoding"}}},
		{name: "other directive", snippet: "rewrite ^ /x break;", whyMatch: "directive 1 (rewrite) is not one of"},
		{name: "block", snippet: "location / { }", whyMatch: "blocks"},
		{name: "variable", snippet: `proxy_set_header X-Real-IP $remote_addr;`, whyMatch: "variables"},
		{name: "framing header", snippet: `more_set_headers "Transfer-Encoding: chunked";`, whyMatch: "managed by the proxy"},
		{name: "options", snippet: `more_set_headers -s 404 "X-A: b";`, whyMatch: "options"},
		{name: "wildcard clear", snippet: `more_clear_headers X-Hidden-*;`, whyMatch: "wildcards"},
		{name: "missing semicolon", snippet: `more_set_headers "X-A: b"`, whyMatch: "';' is missing"},
		{name: "unterminated quote", snippet: `more_set_headers "X-A: b;`, whyMatch: "unterminated"},
		{name: "added twice", snippet: `add_header X-A 1 always; add_header X-A 2 always;`, whyMatch: "only once"},
		{name: "control character", snippet: "more_set_headers \"X-A: a\x01b\";", whyMatch: "control"},
		{name: "bad header name", snippet: `more_set_headers "X A: b";`, whyMatch: "not a header name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, resp, approx, why := snippetHeaders(tt.snippet)
			if tt.whyMatch != "" {
				if !strings.Contains(why, tt.whyMatch) {
					t.Fatalf("why = %q, want it to contain %q", why, tt.whyMatch)
				}
				return
			}
			if why != "" {
				t.Fatalf("refused: %s", why)
			}
			if diff := cmp.Diff(tt.req, req); diff != "" {
				t.Errorf("request headers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.resp, resp); diff != "" {
				t.Errorf("response headers (-want +got):\n%s", diff)
			}
			if (approx != "") != tt.approx {
				t.Errorf("approximated = %q, want %v", approx, tt.approx)
			}
		})
	}
}

func TestPackRules(t *testing.T) {
	draft := func(name string, matches int) *draftRule {
		d := &draftRule{baseName: name, key: name}
		for range matches {
			d.rule.Matches = append(d.rule.Matches, gwapiv1.HTTPRouteMatch{})
		}
		return d
	}
	shape := func(chunks [][]*draftRule) [][]int {
		var out [][]int
		for _, c := range chunks {
			var sizes []int
			for _, d := range c {
				sizes = append(sizes, len(d.rule.Matches))
			}
			out = append(out, sizes)
		}
		return out
	}
	var twenty []*draftRule
	for range 20 {
		twenty = append(twenty, draft("r", 1))
	}
	tests := []struct {
		name   string
		drafts []*draftRule
		want   [][]int
	}{
		{name: "fits", drafts: []*draftRule{draft("a", 3), draft("b", 1)}, want: [][]int{{3, 1}}},
		{name: "more than 64 matches in a rule", drafts: []*draftRule{draft("a", 130)}, want: [][]int{{64, 64}, {2}}},
		{name: "more than 16 rules", drafts: twenty, want: [][]int{{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1}}},
		{name: "more than 128 matches", drafts: []*draftRule{draft("a", 60), draft("b", 60), draft("c", 10)}, want: [][]int{{60, 60}, {10}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, shape(packRules(tt.drafts))); diff != "" {
				t.Errorf("chunks (-want +got):\n%s", diff)
			}
		})
	}
}
