"""pipelinectl driver for Redis Streams: a pipeline is a set of streams, a stage a consumer group."""

__version__ = "0.1.0"
