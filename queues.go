package celerity

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/celerity-go/celerity/transports"
)

// queueChanger is implemented by consumers that can start and stop
// consuming queues while running (both brokers' consumers).
type queueChanger interface {
	AddQueue(queue string) error
	CancelQueue(queue string) error
	Queues() []string
}

// AddConsumer declares q and starts consuming it (Celery's add_consumer).
// A queue named in Config.Declare is declared as described there; another
// one, as Celery's add_task_queue does, with a durable exchange of
// q.ExchangeType (default direct) named q.Exchange (default the queue's
// name) and bound with q.RoutingKey (default the queue's name).
func (w *Worker) AddConsumer(q transports.Queue) error {
	if q.Name == "" {
		return errors.New("celerity: add_consumer needs a queue name")
	}
	qc, err := w.queueChanger()
	if err != nil {
		return err
	}
	decl, configured := w.cfg.declaration(q.Name)
	if !configured {
		decl.Exchange = cmp.Or(q.Exchange, decl.Exchange)
		decl.ExchangeType = cmp.Or(q.ExchangeType, decl.ExchangeType)
		decl.RoutingKey = cmp.Or(q.RoutingKey, decl.RoutingKey)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.tr.Declare(ctx, decl); err != nil {
		return fmt.Errorf("celerity: declare %s: %w", q.Name, err)
	}
	w.qmu.Lock()
	defer w.qmu.Unlock()
	if slices.Contains(qc.Queues(), q.Name) {
		return nil
	}
	if err := qc.AddQueue(q.Name); err != nil {
		return err
	}
	if !slices.ContainsFunc(w.added, func(d transports.Queue) bool { return d.Name == q.Name }) {
		w.added = append(w.added, decl)
	}
	w.log.Info("Started consuming from "+q.Name, "queue", q.Name)
	return nil
}

// CancelConsumer stops consuming a queue (Celery's cancel_consumer).
// Messages already reserved from it still run. A worker may consume no
// queue at all, as a Celery worker being drained does.
func (w *Worker) CancelConsumer(queue string) error {
	qc, err := w.queueChanger()
	if err != nil {
		return err
	}
	w.qmu.Lock()
	defer w.qmu.Unlock()
	w.log.Info("Canceling queue "+queue, "queue", queue)
	return qc.CancelQueue(queue)
}

func (w *Worker) queueChanger() (queueChanger, error) {
	p := w.livePipe()
	if p == nil {
		return nil, ErrNotRunning
	}
	p.sizeMu.Lock()
	closed := p.closed
	p.sizeMu.Unlock()
	if closed {
		return nil, ErrNotRunning
	}
	qc, ok := p.cons.(queueChanger)
	if !ok {
		return nil, errors.New("celerity: this transport cannot change the queues it consumes")
	}
	return qc, nil
}
