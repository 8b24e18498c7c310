package rpc

import (
	"context"

	amqptransport "github.com/celerity-go/celerity/transports/amqp"
)

// Dial connects its own AMQP transport to url (a Celery broker URL) and
// returns a backend publishing through it; Close closes that transport.
func Dial(ctx context.Context, url string, topts amqptransport.Options, opts Options) (*Backend, error) {
	tr, err := amqptransport.New(ctx, url, topts)
	if err != nil {
		return nil, err
	}
	opts.CloseFunc = tr.Close
	return New(tr, opts), nil
}
