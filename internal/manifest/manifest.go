// Package manifest reads multi-document Kubernetes YAML files into unstructured objects, the way
// kubectl apply -f does, for tests and for the proxy's standalone mode.
package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Object is one document of a file, with where it came from (for error messages).
type Object struct {
	File  string
	Index int
	*unstructured.Unstructured
}

// ReadFile decodes every non-empty document of a YAML or JSON file.
func ReadFile(path string) ([]Object, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Decode(path, data)
}

// Decode decodes every non-empty document of data; name is used in errors.
func Decode(name string, data []byte) ([]Object, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []Object
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := utilyaml.Unmarshal(doc, &u.Object); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("%s: document %d: apiVersion and kind are required", name, i)
		}
		out = append(out, Object{File: name, Index: i, Unstructured: u})
	}
}

// ReadDir reads every *.yaml, *.yml and *.json file of dir (not recursively), in name order,
// skipping kustomization files.
func ReadDir(dir string) ([]Object, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || strings.HasPrefix(n, "kustomization.") {
			continue
		}
		switch filepath.Ext(n) {
		case ".yaml", ".yml", ".json":
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []Object
	for _, n := range names {
		objs, err := ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(doc, []byte("\n")) {
		// A leading "---" may stay attached to the first document (helm template output starts so).
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' && !bytes.Equal(t, []byte("---")) {
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}
