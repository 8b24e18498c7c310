package redisstore

import "github.com/celerity-go/celerity/kombu"

func appendJSONString(dst []byte, s string) []byte {
	out, err := kombu.AppendJSON(dst, s, kombu.JSONPlain)
	if err != nil { // a string always encodes
		panic("redisstore: string encoding failed: " + err.Error())
	}
	return out
}

func unmarshalJSON(data []byte) (any, error) { return kombu.UnmarshalJSON(data) }
