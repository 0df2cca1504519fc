package translate

import (
	"fmt"
	"net/http"
	"strings"
	"unicode"

	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/portico-dev/portico/dataplane/routing"
)

// A configuration-snippet is never executed, and never pasted into any configuration. The only
// snippets served are lists of header directives with literal values, which the parser below
// reads into typed Gateway API header filters; anything else refuses the Ingress. Header values
// with nginx variables are refused too: they would reach clients as the literal text "$host".

// framingHeaders cannot be changed by header filters (routing.Compile refuses them): they decide
// how messages are delimited and routed.
var framingHeaders = map[string]bool{
	"Connection": true, "Content-Length": true, "Host": true, "Keep-Alive": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// headerEdits accumulates one direction's header changes, in directive order.
type headerEdits struct{ filter gwapiv1.HTTPHeaderFilter }

func (e *headerEdits) set(name, value string) {
	for i := range e.filter.Set {
		if strings.EqualFold(string(e.filter.Set[i].Name), name) {
			e.filter.Set[i].Value = value // the last directive wins, as in nginx
			return
		}
	}
	e.filter.Set = append(e.filter.Set, gwapiv1.HTTPHeader{Name: gwapiv1.HTTPHeaderName(name), Value: value})
}

func (e *headerEdits) add(name, value string) bool {
	for _, h := range e.filter.Add {
		if strings.EqualFold(string(h.Name), name) {
			return false
		}
	}
	e.filter.Add = append(e.filter.Add, gwapiv1.HTTPHeader{Name: gwapiv1.HTTPHeaderName(name), Value: value})
	return true
}

func (e *headerEdits) remove(name string) {
	for _, n := range e.filter.Remove {
		if strings.EqualFold(n, name) {
			return
		}
	}
	e.filter.Remove = append(e.filter.Remove, name)
}

func (e *headerEdits) result() *gwapiv1.HTTPHeaderFilter {
	if len(e.filter.Set)+len(e.filter.Add)+len(e.filter.Remove) == 0 {
		return nil
	}
	f := e.filter
	return &f
}

func parseConfigurationSnippet(p *annotationParser, value string) {
	req, resp, approximated, why := snippetHeaders(value)
	if why != "" {
		p.refuse(neverExecuted + " Only header directives with literal values can be translated; " + why + ".")
		return
	}
	p.cfg.requestHeaders, p.cfg.responseHeaders = req, resp
	if approximated != "" {
		p.notice(Approximated, approximated)
	}
}

// snippetHeaders reads a snippet made only of allow-listed header directives. why says what made
// it untranslatable; approximated what differs from nginx.
func snippetHeaders(snippet string) (req, resp *gwapiv1.HTTPHeaderFilter, approximated, why string) {
	stmts, why := nginxStatements(snippet)
	if why != "" {
		return nil, nil, "", why
	}
	var reqEdits, respEdits headerEdits
	for i, st := range stmts {
		where := fmt.Sprintf("directive %d (%s)", i+1, st[0])
		args := st[1:]
		switch st[0] {
		case "more_set_headers", "more_set_input_headers":
			edits := &respEdits
			if st[0] == "more_set_input_headers" {
				edits = &reqEdits
			}
			if len(args) == 0 {
				return nil, nil, "", where + " needs a header"
			}
			for _, a := range args {
				if strings.HasPrefix(a, "-") {
					return nil, nil, "", where + ": options such as -s and -t are not supported"
				}
				name, value, _ := strings.Cut(a, ":")
				name, value = strings.TrimSpace(name), strings.TrimSpace(value)
				if w := checkSnippetHeader(name, value); w != "" {
					return nil, nil, "", where + ": " + w
				}
				if value == "" {
					edits.remove(name) // more_set_headers "X-Foo:" clears the header
				} else {
					edits.set(name, value)
				}
			}
		case "more_clear_headers", "more_clear_input_headers":
			edits := &respEdits
			if st[0] == "more_clear_input_headers" {
				edits = &reqEdits
			}
			if len(args) == 0 {
				return nil, nil, "", where + " needs a header name"
			}
			for _, name := range args {
				if strings.HasPrefix(name, "-") || strings.Contains(name, "*") {
					return nil, nil, "", where + ": options and wildcards are not supported"
				}
				if w := checkSnippetHeader(name, ""); w != "" {
					return nil, nil, "", where + ": " + w
				}
				edits.remove(name)
			}
		case "add_header":
			if len(args) < 2 || len(args) > 3 || (len(args) == 3 && args[2] != "always") {
				return nil, nil, "", where + ` must be "add_header Name value [always]"`
			}
			if w := checkSnippetHeader(args[0], args[1]); w != "" {
				return nil, nil, "", where + ": " + w
			}
			if !respEdits.add(args[0], args[1]) {
				return nil, nil, "", where + ": a header can be added only once"
			}
			if len(args) == 2 {
				approximated = "add_header without \"always\" added headers to successful and redirect responses only; Portico adds them to every response"
			}
		case "proxy_set_header":
			if len(args) != 2 {
				return nil, nil, "", where + ` must be "proxy_set_header Name value"`
			}
			if w := checkSnippetHeader(args[0], args[1]); w != "" {
				return nil, nil, "", where + ": " + w
			}
			if args[1] == "" {
				reqEdits.remove(args[0]) // an empty value removes the header in nginx
			} else {
				reqEdits.set(args[0], args[1])
			}
		default:
			return nil, nil, "", where + " is not one of more_set_headers, more_set_input_headers, more_clear_headers, more_clear_input_headers, add_header, proxy_set_header"
		}
	}
	return reqEdits.result(), respEdits.result(), approximated, ""
}

func checkSnippetHeader(name, value string) string {
	switch {
	case !routing.IsToken(name):
		return fmt.Sprintf("%q is not a header name", name)
	case framingHeaders[http.CanonicalHeaderKey(name)]:
		return fmt.Sprintf("the %s header is managed by the proxy (use upstream-vhost for Host)", http.CanonicalHeaderKey(name))
	case strings.Contains(value, "$"):
		return "nginx variables are not supported"
	case strings.IndexFunc(value, unicode.IsControl) >= 0:
		return "values must not contain control characters"
	}
	return ""
}

// nginxStatements splits nginx configuration text into statements of words, with nginx's quoting
// ("..." and '...', backslash escapes) and comments. Blocks are refused: no allow-listed directive
// has one.
func nginxStatements(s string) ([][]string, string) {
	var stmts [][]string
	var cur []string
	var word strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			cur = append(cur, word.String())
			word.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '#' && !inWord:
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'':
			if inWord {
				return nil, "a quote in the middle of a word"
			}
			end := -1
			for j := i + 1; j < len(s); j++ {
				if s[j] == '\\' && j+1 < len(s) {
					word.WriteByte(s[j+1])
					j++
					continue
				}
				if s[j] == c {
					end = j
					break
				}
				word.WriteByte(s[j])
			}
			if end < 0 {
				return nil, "an unterminated quote"
			}
			inWord, i = true, end
			flush()
		case c == ';':
			flush()
			if len(cur) > 0 {
				stmts = append(stmts, cur)
			}
			cur = nil
		case c == '{' || c == '}':
			return nil, "blocks ({ }) are not supported"
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			flush()
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	flush()
	if len(cur) > 0 {
		return nil, fmt.Sprintf("a ';' is missing after %q", strings.Join(cur, " "))
	}
	return stmts, ""
}
