"""pipelinectl driver for RabbitMQ: a pipeline is a virtual host, a stage a queue and its consumers."""

__version__ = "0.1.0"
