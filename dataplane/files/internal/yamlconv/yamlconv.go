// convertToJSONableObject below is copied from sigs.k8s.io/yaml v1.6.0 (yaml.go):
//
// Copyright 2021 The Kubernetes Authors.
// Licensed under the Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0).

// Package yamlconv decodes a YAML document the way sigs.k8s.io/yaml's Unmarshal and UnmarshalStrict
// do (YAML → generic object → JSON with the target's string fields honoured → encoding/json), but
// with the YAML parsed once: Parse gives the generic object, and Decode can then be called on it
// several times (the document's kind first, then its typed object) without parsing again.
//
// convertToJSONableObject and fields.go are copied from sigs.k8s.io/yaml v1.6.0, so that the result
// is exactly sigs.k8s.io/yaml's for the same input; errors are not promised to read the same (a
// caller that reports them decodes again with sigs.k8s.io/yaml).
package yamlconv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"

	goyaml "sigs.k8s.io/yaml/goyaml.v2"
)

// Parse parses one YAML document strictly (duplicate keys are errors), as sigs.k8s.io/yaml's
// UnmarshalStrict does before converting.
func Parse(doc []byte) (any, error) {
	var obj any
	if err := goyaml.UnmarshalStrict(doc, &obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// Decode decodes a parsed document into target (a non-nil pointer): with strict, unknown fields
// are errors, as in sigs.k8s.io/yaml.UnmarshalStrict.
func Decode(obj any, target any, strict bool) error {
	jsonTarget := reflect.ValueOf(target)
	jsonObj, err := convertToJSONableObject(obj, &jsonTarget)
	if err != nil {
		return err
	}
	b, err := json.Marshal(jsonObj)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if strict {
		d.DisallowUnknownFields()
	}
	return d.Decode(&target)
}

// Pick returns a document that keeps only the top-level keys of obj that encoding/json could match
// to one of names (case-insensitively, non-ASCII keys and keys that are not strings kept to be
// safe): decoding it into a struct with only those fields gives what decoding obj would, without
// converting the rest of the document. obj is returned as it is when it is not a mapping.
func Pick(obj any, names ...string) any {
	m, ok := obj.(map[any]any)
	if !ok {
		return obj
	}
	out := make(map[any]any, len(names))
	for k, v := range m {
		s, isString := k.(string)
		if !isString || !isASCII(s) || matchesAny(s, names) {
			out[k] = v
		}
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func matchesAny(s string, names []string) bool {
	for _, n := range names {
		if len(s) == len(n) && asciiEqualFold([]byte(s), []byte(n)) {
			return true
		}
	}
	return false
}

func convertToJSONableObject(yamlObj interface{}, jsonTarget *reflect.Value) (interface{}, error) {
	var err error

	// Resolve jsonTarget to a concrete value (i.e. not a pointer or an
	// interface). We pass decodingNull as false because we're not actually
	// decoding into the value, we're just checking if the ultimate target is a
	// string.
	if jsonTarget != nil {
		jsonUnmarshaler, textUnmarshaler, pointerValue := indirect(*jsonTarget, false)
		// We have a JSON or Text Umarshaler at this level, so we can't be trying
		// to decode into a string.
		if jsonUnmarshaler != nil || textUnmarshaler != nil {
			jsonTarget = nil
		} else {
			jsonTarget = &pointerValue
		}
	}

	// If yamlObj is a number or a boolean, check if jsonTarget is a string -
	// if so, coerce.  Else return normal.
	// If yamlObj is a map or array, find the field that each key is
	// unmarshaling to, and when you recurse pass the reflect.Value for that
	// field back into this function.
	switch typedYAMLObj := yamlObj.(type) {
	case map[interface{}]interface{}:
		// JSON does not support arbitrary keys in a map, so we must convert
		// these keys to strings.
		//
		// From my reading of go-yaml v2 (specifically the resolve function),
		// keys can only have the types string, int, int64, float64, binary
		// (unsupported), or null (unsupported).
		strMap := make(map[string]interface{})
		for k, v := range typedYAMLObj {
			// Resolve the key to a string first.
			var keyString string
			switch typedKey := k.(type) {
			case string:
				keyString = typedKey
			case int:
				keyString = strconv.Itoa(typedKey)
			case int64:
				// go-yaml will only return an int64 as a key if the system
				// architecture is 32-bit and the key's value is between 32-bit
				// and 64-bit. Otherwise the key type will simply be int.
				keyString = strconv.FormatInt(typedKey, 10)
			case float64:
				// Stolen from go-yaml to use the same conversion to string as
				// the go-yaml library uses to convert float to string when
				// Marshaling.
				s := strconv.FormatFloat(typedKey, 'g', -1, 32)
				switch s {
				case "+Inf":
					s = ".inf"
				case "-Inf":
					s = "-.inf"
				case "NaN":
					s = ".nan"
				}
				keyString = s
			case bool:
				if typedKey {
					keyString = "true"
				} else {
					keyString = "false"
				}
			default:
				return nil, fmt.Errorf("unsupported map key of type: %s, key: %+#v, value: %+#v",
					reflect.TypeOf(k), k, v)
			}

			// jsonTarget should be a struct or a map. If it's a struct, find
			// the field it's going to map to and pass its reflect.Value. If
			// it's a map, find the element type of the map and pass the
			// reflect.Value created from that type. If it's neither, just pass
			// nil - JSON conversion will error for us if it's a real issue.
			if jsonTarget != nil {
				t := *jsonTarget
				if t.Kind() == reflect.Struct {
					keyBytes := []byte(keyString)
					// Find the field that the JSON library would use.
					var f *field
					fields := cachedTypeFields(t.Type())
					for i := range fields {
						ff := &fields[i]
						if bytes.Equal(ff.nameBytes, keyBytes) {
							f = ff
							break
						}
						// Do case-insensitive comparison.
						if f == nil && ff.equalFold(ff.nameBytes, keyBytes) {
							f = ff
						}
					}
					if f != nil {
						// Find the reflect.Value of the most preferential
						// struct field.
						jtf := t.Field(f.index[0])
						strMap[keyString], err = convertToJSONableObject(v, &jtf)
						if err != nil {
							return nil, err
						}
						continue
					}
				} else if t.Kind() == reflect.Map {
					// Create a zero value of the map's element type to use as
					// the JSON target.
					jtv := reflect.Zero(t.Type().Elem())
					strMap[keyString], err = convertToJSONableObject(v, &jtv)
					if err != nil {
						return nil, err
					}
					continue
				}
			}
			strMap[keyString], err = convertToJSONableObject(v, nil)
			if err != nil {
				return nil, err
			}
		}
		return strMap, nil
	case []interface{}:
		// We need to recurse into arrays in case there are any
		// map[interface{}]interface{}'s inside and to convert any
		// numbers to strings.

		// If jsonTarget is a slice (which it really should be), find the
		// thing it's going to map to. If it's not a slice, just pass nil
		// - JSON conversion will error for us if it's a real issue.
		var jsonSliceElemValue *reflect.Value
		if jsonTarget != nil {
			t := *jsonTarget
			if t.Kind() == reflect.Slice {
				// By default slices point to nil, but we need a reflect.Value
				// pointing to a value of the slice type, so we create one here.
				ev := reflect.Indirect(reflect.New(t.Type().Elem()))
				jsonSliceElemValue = &ev
			}
		}

		// Make and use a new array.
		arr := make([]interface{}, len(typedYAMLObj))
		for i, v := range typedYAMLObj {
			arr[i], err = convertToJSONableObject(v, jsonSliceElemValue)
			if err != nil {
				return nil, err
			}
		}
		return arr, nil
	default:
		// If the target type is a string and the YAML type is a number,
		// convert the YAML type to a string.
		if jsonTarget != nil && (*jsonTarget).Kind() == reflect.String {
			// Based on my reading of go-yaml, it may return int, int64,
			// float64, or uint64.
			var s string
			switch typedVal := typedYAMLObj.(type) {
			case int:
				s = strconv.FormatInt(int64(typedVal), 10)
			case int64:
				s = strconv.FormatInt(typedVal, 10)
			case float64:
				s = strconv.FormatFloat(typedVal, 'g', -1, 32)
			case uint64:
				s = strconv.FormatUint(typedVal, 10)
			case bool:
				if typedVal {
					s = "true"
				} else {
					s = "false"
				}
			}
			if len(s) > 0 {
				yamlObj = interface{}(s)
			}
		}
		return yamlObj, nil
	}
}

// Plain reports whether converting obj to JSON cannot fail: every mapping key is of a type
// sigs.k8s.io/yaml converts, and every value is one encoding/json marshals (no NaN or infinite
// floats). Pick is exact only for such documents.
func Plain(obj any) bool {
	switch v := obj.(type) {
	case nil, string, bool, int, int64, uint64:
		return true
	case float64:
		return !math.IsNaN(v) && !math.IsInf(v, 0)
	case []any:
		for _, e := range v {
			if !Plain(e) {
				return false
			}
		}
		return true
	case map[any]any:
		for k, e := range v {
			switch k.(type) {
			case string, int, int64, float64, bool:
			default:
				return false
			}
			if !Plain(e) {
				return false
			}
		}
		return true
	default:
		return false
	}
}
