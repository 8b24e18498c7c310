package kombu

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// maxYAMLNodes bounds the number of nodes visited while converting a YAML
// document (aliases are expanded), defeating "billion laughs" documents.
const maxYAMLNodes = 1 << 20

// unmarshalYAML decodes a YAML body with yaml.safe_load-like semantics into
// the package value model: mappings -> map[string]any (non-string scalar
// keys use their text), sequences -> []any, ints -> int64 / *big.Int,
// floats -> float64, !!binary -> []byte, timestamps -> time.Time (naive
// ones in Naive) or Date for a bare date, YAML 1.1 booleans (yes/no/on/off)
// -> bool as PyYAML does. Only the first document is read, as safe_load
// does with a single document; more than one document is an error.
func unmarshalYAML(body []byte) (any, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // empty document: safe_load returns None
		}
		return nil, &DecodeError{Err: fmt.Errorf("yaml: %w", err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &DecodeError{Err: errors.New("yaml: expected a single document in the stream")}
	}
	c := yamlConverter{}
	v, err := c.node(&doc, 0)
	if err != nil {
		return nil, &DecodeError{Err: fmt.Errorf("yaml: %w", err)}
	}
	return v, nil
}

type yamlConverter struct {
	visited int
}

func (c *yamlConverter) node(n *yaml.Node, depth int) (any, error) {
	c.visited++
	if c.visited > maxYAMLNodes {
		return nil, errors.New("document too large (alias expansion)")
	}
	if depth > maxJSONDepth {
		return nil, errors.New("nesting too deep")
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.node(n.Content[0], depth+1)
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, errors.New("unknown alias")
		}
		return c.node(n.Alias, depth+1)
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, it := range n.Content {
			v, err := c.node(it, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		if err := c.mapping(n, out, depth); err != nil {
			return nil, err
		}
		return out, nil
	case yaml.ScalarNode:
		return c.scalar(n)
	}
	return nil, fmt.Errorf("unsupported node kind %d", n.Kind)
}

func (c *yamlConverter) mapping(n *yaml.Node, out map[string]any, depth int) error {
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		key, err := c.key(k, depth)
		if err != nil {
			return err
		}
		val, err := c.node(v, depth+1)
		if err != nil {
			return err
		}
		out[key] = val
	}
	// Merge keys never override explicit keys.
	for _, m := range merges {
		srcs := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, s := range srcs {
			for s.Kind == yaml.AliasNode && s.Alias != nil {
				s = s.Alias
			}
			if s.Kind != yaml.MappingNode {
				return errors.New("merge key value is not a mapping")
			}
			tmp := map[string]any{}
			if err := c.mapping(s, tmp, depth+1); err != nil {
				return err
			}
			for k, v := range tmp {
				if _, ok := out[k]; !ok {
					out[k] = v
				}
			}
		}
	}
	return nil
}

func (c *yamlConverter) key(k *yaml.Node, depth int) (string, error) {
	for k.Kind == yaml.AliasNode && k.Alias != nil {
		k = k.Alias
	}
	if k.Kind != yaml.ScalarNode {
		return "", errors.New("mapping key is not a scalar")
	}
	v, err := c.scalar(k)
	if err != nil {
		return "", err
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	if v == nil {
		return "None", nil
	}
	return k.Value, nil
}

// yaml11Bool reports PyYAML's YAML 1.1 boolean words.
func yaml11Bool(v string) (bool, bool) {
	switch v {
	case "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE":
		return true, true
	case "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE":
		return false, true
	}
	return false, false
}

// isIntLiteral reports a plain decimal integer (sign, digits, underscores).
func isIntLiteral(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	if s == "" || !isDigit(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) && s[i] != '_' {
			return false
		}
	}
	return true
}

func (c *yamlConverter) scalar(n *yaml.Node) (any, error) {
	tag := n.ShortTag()
	// n.Style is 0 only for plain, untagged scalars.
	if tag == "!!str" && n.Style == 0 {
		if b, ok := yaml11Bool(n.Value); ok {
			return b, nil
		}
	}
	switch tag {
	case "!!null":
		return nil, nil
	case "!!bool":
		if b, ok := yaml11Bool(n.Value); ok {
			return b, nil
		}
		var b bool
		err := n.Decode(&b)
		return b, err
	case "!!int":
		var i int64
		if err := n.Decode(&i); err == nil {
			return i, nil
		}
		s := strings.ReplaceAll(n.Value, "_", "")
		if b, ok := new(big.Int).SetString(s, 0); ok {
			return b, nil
		}
		return nil, fmt.Errorf("invalid int %q", n.Value)
	case "!!float":
		// yaml.v3 resolves integers beyond 64 bits as floats; PyYAML
		// keeps them exact.
		if isIntLiteral(n.Value) {
			if b, ok := new(big.Int).SetString(strings.ReplaceAll(n.Value, "_", ""), 10); ok {
				return b, nil
			}
		}
		var f float64
		err := n.Decode(&f)
		return f, err
	case "!!binary":
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(n.Value), ""))
		return b, err
	case "!!timestamp":
		return yamlTimestamp(n)
	case "!!str":
		return n.Value, nil
	}
	if strings.HasPrefix(tag, "!!") {
		// Other standard tags (!!set, !!omap handled as collections above).
		return n.Value, nil
	}
	return nil, fmt.Errorf("could not determine a constructor for the tag %q", n.Tag)
}

func yamlTimestamp(n *yaml.Node) (any, error) {
	s := strings.TrimSpace(n.Value)
	if len(s) <= 10 {
		var t time.Time
		if err := n.Decode(&t); err != nil {
			return nil, err
		}
		return Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}, nil
	}
	// Normalise "2024-01-02 03:04:05.6 +01:00" to an isoformat string.
	date, rest := s[:10], strings.TrimLeft(s[10:], "Tt \t")
	rest = strings.ReplaceAll(rest, " ", "")
	if strings.HasSuffix(rest, "z") {
		rest = rest[:len(rest)-1] + "Z"
	}
	t, err := parseISODateTime(date + "T" + rest)
	if err != nil {
		var tt time.Time
		if derr := n.Decode(&tt); derr != nil {
			return nil, derr
		}
		return tt, nil
	}
	return t, nil
}

// marshalYAML encodes v as a YAML document that PyYAML's safe_load reads
// back to the same values: []byte as !!binary, time.Time and Date as
// timestamps, Decimal, UUID and TimeOfDay as strings.
func marshalYAML(v any) ([]byte, error) {
	n, err := yamlNode(v, 0)
	if err != nil {
		return nil, &EncodeError{Err: fmt.Errorf("yaml: %w", err)}
	}
	out, err := yaml.Marshal(n)
	if err != nil {
		return nil, &EncodeError{Err: fmt.Errorf("yaml: %w", err)}
	}
	return out, nil
}

func scalarNode(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

func yamlNode(v any, depth int) (*yaml.Node, error) {
	if depth > maxEncodeDepth {
		return nil, errors.New("nesting too deep (circular reference?)")
	}
	switch x := v.(type) {
	case nil:
		return scalarNode("!!null", "null"), nil
	case bool:
		return scalarNode("!!bool", strconv.FormatBool(x)), nil
	case string:
		// Always quoted: a plain "yes", "0777" or "1:20" means something
		// else to PyYAML's YAML 1.1 resolver.
		n := scalarNode("!!str", x)
		n.Style = yaml.DoubleQuotedStyle
		return n, nil
	case int64:
		return scalarNode("!!int", strconv.FormatInt(x, 10)), nil
	case *big.Int:
		if x == nil {
			return scalarNode("!!null", "null"), nil
		}
		return scalarNode("!!int", x.String()), nil
	case float64:
		return yamlFloat(x), nil
	case float32:
		return yamlFloat(float64(x)), nil
	case []byte:
		return scalarNode("!!binary", base64.StdEncoding.EncodeToString(x)), nil
	case time.Time:
		b, err := appendDateTime(nil, x, false)
		if err != nil {
			return nil, err
		}
		return scalarNode("!!timestamp", string(b)), nil
	case Date:
		return scalarNode("!!timestamp", x.String()), nil
	case TimeOfDay:
		return scalarNode("!!str", x.String()), nil
	case Decimal:
		return scalarNode("!!str", string(x)), nil
	case UUID:
		return scalarNode("!!str", x.String()), nil
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, it := range x {
			c, err := yamlNode(it, depth+1)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		return n, nil
	case map[string]any:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, k := range sortedKeys(x) {
			c, err := yamlNode(x[k], depth+1)
			if err != nil {
				return nil, err
			}
			kn := scalarNode("!!str", k)
			kn.Style = yaml.DoubleQuotedStyle
			n.Content = append(n.Content, kn, c)
		}
		return n, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return scalarNode("!!int", strconv.FormatInt(rv.Int(), 10)), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return scalarNode("!!int", strconv.FormatUint(rv.Uint(), 10)), nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return scalarNode("!!null", "null"), nil
		}
		return yamlNode(rv.Elem().Interface(), depth+1)
	case reflect.Bool:
		return yamlNode(rv.Bool(), depth)
	case reflect.String:
		return yamlNode(rv.String(), depth)
	case reflect.Float32, reflect.Float64:
		return yamlFloat(rv.Float()), nil
	}
	// Slices, maps, structs: through the JSON value model.
	b, err := AppendJSON(nil, v, JSONTyped)
	if err != nil {
		return nil, err
	}
	generic, err := UnmarshalJSON(b)
	if err != nil {
		return nil, err
	}
	return yamlNode(generic, depth+1)
}

func yamlFloat(f float64) *yaml.Node {
	switch {
	case math.IsNaN(f):
		return scalarNode("!!float", ".nan")
	case math.IsInf(f, 1):
		return scalarNode("!!float", ".inf")
	case math.IsInf(f, -1):
		return scalarNode("!!float", "-.inf")
	}
	// PyYAML only resolves floats that contain a '.', and writes 1e+16 as
	// 1.0e+16; do the same.
	s := string(appendPyFloat(nil, f, 64))
	if !strings.Contains(s, ".") {
		if i := strings.IndexByte(s, 'e'); i >= 0 {
			s = s[:i] + ".0" + s[i:]
		}
	}
	return scalarNode("!!float", s)
}
