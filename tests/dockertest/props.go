package dockertest

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// unknown marks a value the program declared but that is not known under mocks (a computed output).
type unknown struct{}

func (unknown) String() string { return "<unknown>" }

// plain turns a PropertyValue into nil, bool, float64, string, []any, map[string]any or unknown{},
// unwrapping secrets (their strings are collected in secrets, so messages can be redacted) and known
// outputs.
func plain(v resource.PropertyValue, secret bool, secrets map[string]bool) any {
	switch {
	case v.IsSecret():
		return plain(v.SecretValue().Element, true, secrets)
	case v.IsComputed():
		return unknown{}
	case v.IsOutput():
		o := v.OutputValue()
		if !o.Known {
			return unknown{}
		}
		return plain(o.Element, secret || o.Secret, secrets)
	case v.IsNull():
		return nil
	case v.IsBool():
		return v.BoolValue()
	case v.IsNumber():
		return v.NumberValue()
	case v.IsString():
		s := v.StringValue()
		if secret {
			addSecret(s, secrets)
		}
		return s
	case v.IsArray():
		arr := v.ArrayValue()
		out := make([]any, len(arr))
		for i, e := range arr {
			out[i] = plain(e, secret, secrets)
		}
		return out
	case v.IsObject():
		return plainMap(v.ObjectValue(), secret, secrets)
	default:
		return fmt.Errorf("unsupported property value of type %s", v.TypeString())
	}
}

func plainMap(m resource.PropertyMap, secret bool, secrets map[string]bool) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		s := secret
		if notSecretKeys[string(k)] {
			// Pulumi tracks secrecy per top-level input: an upload's path and mode are not secret.
			s = false
		}
		out[string(k)] = plain(v, s, secrets)
	}
	return out
}

var notSecretKeys = map[string]bool{"file": true, "permissions": true, "executable": true}

// addSecret remembers the parts of a secret string worth redacting: the whole string, each line of a
// multi-line one, and the value of KEY=VALUE; short fragments (< 6 characters) are not redacted.
func addSecret(s string, secrets map[string]bool) {
	add := func(x string) {
		if len(x) >= 6 {
			secrets[x] = true
		}
	}
	add(s)
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		add(line)
		if i := strings.IndexAny(line, "= "); i > 0 {
			add(strings.TrimSpace(line[i+1:]))
		}
	}
}

// obj reads the fields of one declared object and remembers which it consumed, so that every declared
// field is either translated or reported: nothing is silently dropped.
type obj struct {
	path string
	m    map[string]any
	used map[string]bool
	errs *[]string
}

func newObj(path string, m map[string]any, errs *[]string) *obj {
	return &obj{path: path, m: m, used: map[string]bool{}, errs: errs}
}

func (o *obj) fail(key, format string, args ...any) {
	*o.errs = append(*o.errs, fmt.Sprintf("%s.%s: %s", o.path, key, fmt.Sprintf(format, args...)))
}

// get returns the raw value and whether it is present (non-null).
func (o *obj) get(key string) (any, bool) {
	o.used[key] = true
	v, ok := o.m[key]
	if !ok || v == nil {
		return nil, false
	}
	return v, true
}

// ignore consumes a field that has no docker CLI meaning (provider-only behaviour).
func (o *obj) ignore(keys ...string) {
	for _, k := range keys {
		o.used[k] = true
	}
}

func (o *obj) known(key string) (any, bool) {
	v, ok := o.get(key)
	if !ok {
		return nil, false
	}
	if _, isUnknown := v.(unknown); isUnknown {
		o.fail(key, "value is unknown (computed) under mocks; cannot create it on the engine")
		return nil, false
	}
	return v, true
}

func (o *obj) str(key string) (string, bool) {
	v, ok := o.known(key)
	if !ok {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	}
	o.fail(key, "want a string, got %T", v)
	return "", false
}

// rawStr returns a string, or unknown{} reported as ("", true, true).
func (o *obj) strOrUnknown(key string) (s string, present, isUnknown bool) {
	v, ok := o.get(key)
	if !ok {
		return "", false, false
	}
	if _, u := v.(unknown); u {
		return "", true, true
	}
	s, ok = v.(string)
	if !ok {
		o.fail(key, "want a string, got %T", v)
		return "", false, false
	}
	return s, true, false
}

func (o *obj) boolean(key string) (bool, bool) {
	v, ok := o.known(key)
	if !ok {
		return false, false
	}
	b, isBool := v.(bool)
	if !isBool {
		o.fail(key, "want a bool, got %T", v)
		return false, false
	}
	return b, true
}

func (o *obj) integer(key string) (int, bool) {
	v, ok := o.known(key)
	if !ok {
		return 0, false
	}
	switch x := v.(type) {
	case float64:
		if x != math.Trunc(x) {
			o.fail(key, "want an integer, got %v", x)
			return 0, false
		}
		return int(x), true
	case string:
		n, err := strconv.Atoi(x)
		if err == nil {
			return n, true
		}
	}
	o.fail(key, "want an integer, got %T", v)
	return 0, false
}

func (o *obj) strs(key string) ([]string, bool) {
	v, ok := o.known(key)
	if !ok {
		return nil, false
	}
	arr, isArr := v.([]any)
	if !isArr {
		o.fail(key, "want a list, got %T", v)
		return nil, false
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		switch x := e.(type) {
		case string:
			out = append(out, x)
		case unknown:
			o.fail(fmt.Sprintf("%s[%d]", key, i), "value is unknown (computed) under mocks")
			return nil, false
		default:
			o.fail(fmt.Sprintf("%s[%d]", key, i), "want a string, got %T", e)
			return nil, false
		}
	}
	return out, true
}

// strMap returns a map of strings with sorted keys.
func (o *obj) strMap(key string) ([]string, map[string]string, bool) {
	v, ok := o.known(key)
	if !ok {
		return nil, nil, false
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		o.fail(key, "want a map, got %T", v)
		return nil, nil, false
	}
	out := map[string]string{}
	keys := make([]string, 0, len(m))
	for k, e := range m {
		s, isStr := e.(string)
		if !isStr {
			o.fail(key+"."+k, "want a string, got %T", e)
			return nil, nil, false
		}
		out[k] = s
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, out, true
}

func (o *obj) child(key string) (*obj, bool) {
	v, ok := o.known(key)
	if !ok {
		return nil, false
	}
	m, isMap := v.(map[string]any)
	if !isMap {
		o.fail(key, "want an object, got %T", v)
		return nil, false
	}
	return newObj(o.path+"."+key, m, o.errs), true
}

func (o *obj) children(key string) ([]*obj, bool) {
	v, ok := o.known(key)
	if !ok {
		return nil, false
	}
	arr, isArr := v.([]any)
	if !isArr {
		o.fail(key, "want a list, got %T", v)
		return nil, false
	}
	out := make([]*obj, 0, len(arr))
	for i, e := range arr {
		m, isMap := e.(map[string]any)
		if !isMap {
			o.fail(fmt.Sprintf("%s[%d]", key, i), "want an object, got %T", e)
			return nil, false
		}
		out = append(out, newObj(fmt.Sprintf("%s.%s[%d]", o.path, key, i), m, o.errs))
	}
	return out, true
}

// done reports every present field that was not consumed.
func (o *obj) done() {
	var left []string
	for k, v := range o.m {
		if o.used[k] || v == nil {
			continue
		}
		left = append(left, k)
	}
	sort.Strings(left)
	for _, k := range left {
		*o.errs = append(*o.errs, fmt.Sprintf("%s.%s: declared, but dockertest does not know how to translate it to the docker CLI", o.path, k))
	}
}

func joinErrs(errs []string) string { return "\n  - " + strings.Join(errs, "\n  - ") }
