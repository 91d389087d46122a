"""send: publishes persistent messages to a durable queue with publisher confirms."""
