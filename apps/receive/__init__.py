"""receive: consumes the work queue with prefetch and manual acks after processing."""
