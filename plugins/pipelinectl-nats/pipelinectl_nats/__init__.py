"""pipelinectl driver for NATS JetStream: a pipeline is a stream, a stage a durable consumer."""

__version__ = "0.1.0"
