package main

import (
	"encoding/hex"
	"errors"
	"os"
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func hexKey(s string) ([]byte, error) {
	k, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("key is not hex")
	}
	return k, nil
}
