package rpc

import amqp "github.com/rabbitmq/amqp091-go"

// deleteQueue removes a test queue and its same-named exchange.
func deleteQueue(url, name string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		ch.QueueDelete(name, false, false, false)
		ch.ExchangeDelete(name, false, false)
		ch.Close()
	}
}
