"""The durable core: registry, workflow context, replay-then-record, workers."""
