package kombu

import "errors"

// TODO(step 2): yaml support.
func unmarshalYAML(body []byte) (any, error) {
	return nil, &DecodeError{Err: errors.New("yaml not implemented yet")}
}

func marshalYAML(v any) ([]byte, error) {
	return nil, &EncodeError{Err: errors.New("yaml not implemented yet")}
}
