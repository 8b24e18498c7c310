package amqptransport

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestAMQPSUsesTLSConfig dials amqps:// against a local TLS listener: with
// Options.TLS trusting its certificate the handshake succeeds and the AMQP
// protocol header arrives encrypted; without it the certificate is refused.
func TestAMQPSUsesTLSConfig(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	clientTLS := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	clientTLS.ServerName = "example.com" // httptest's certificate name

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: srv.TLS.Certificates})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 2)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				hdr := make([]byte, 8)
				if _, err := io.ReadFull(conn, hdr); err != nil {
					got <- "error: " + err.Error()
					return
				}
				got <- string(hdr)
			}()
		}
	}()
	url := "amqps://guest:guest@" + ln.Addr().String() + "//"

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = New(ctx, url, Options{TLS: clientTLS, DialTimeout: 2 * time.Second, Logger: quietLogger()})
	if err == nil {
		t.Fatal("connected to a fake broker")
	}
	if h := <-got; h != "AMQP\x00\x00\x09\x01" {
		t.Fatalf("server read %q, want the AMQP 0-9-1 protocol header", h)
	}

	_, err = New(ctx, url, Options{TLS: &tls.Config{ServerName: "example.com"}, DialTimeout: 2 * time.Second, Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v", err)
	}
	if h := <-got; !strings.HasPrefix(h, "error") {
		t.Fatalf("server read %q after a refused handshake", h)
	}
}
