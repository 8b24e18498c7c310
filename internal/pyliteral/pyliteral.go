// Package pyliteral reads the Python literals found in captured test data
// (py-amqp prints undecodable bodies as bytes literals such as
// b'x\x9c...').
package pyliteral

import (
	"errors"
	"fmt"
	"strconv"
)

// Bytes decodes a Python bytes literal (b'...' or b"...") with the escapes
// repr() produces: \xNN, \n, \r, \t, \\, \' and \".
func Bytes(s string) ([]byte, error) {
	if len(s) < 3 || s[0] != 'b' || (s[1] != '\'' && s[1] != '"') || s[len(s)-1] != s[1] {
		return nil, fmt.Errorf("not a bytes literal: %.20q", s)
	}
	s = s[2 : len(s)-1]
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		i++
		if i >= len(s) {
			return nil, errors.New("trailing backslash")
		}
		switch s[i] {
		case 'x':
			if i+3 > len(s) {
				return nil, errors.New("short \\x escape")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, err
			}
			out = append(out, byte(v))
			i += 2
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case '\\', '\'', '"':
			out = append(out, s[i])
		default:
			return nil, fmt.Errorf("unsupported escape \\%c", s[i])
		}
	}
	return out, nil
}
