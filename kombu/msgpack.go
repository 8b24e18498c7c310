package kombu

import "errors"

// TODO(step 2): msgpack support.
func unmarshalMsgpack(body []byte) (any, error) {
	return nil, &DecodeError{Err: errors.New("msgpack not implemented yet")}
}

func marshalMsgpack(v any) ([]byte, error) {
	return nil, &EncodeError{Err: errors.New("msgpack not implemented yet")}
}
