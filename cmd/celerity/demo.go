package main

import (
	"fmt"
	"io"
)

func demoCmd(args []string, stdout, stderr io.Writer) error {
	return fmt.Errorf("demo: not built yet")
}
