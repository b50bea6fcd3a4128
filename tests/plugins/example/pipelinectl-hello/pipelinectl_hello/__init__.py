"""The smallest pipelinectl plugin: a driver that can only report status, and one command."""

import typer

from pipelinectl.plugin_api import Capability, Connection, Pipeline, Stage, UnsupportedVerbs


class HelloPlane(UnsupportedVerbs):
    """Every verb but `status` is inherited from UnsupportedVerbs: exit 7, naming driver and verb."""

    driver = "hello"
    capabilities = frozenset({Capability.STATUS})
    url_schemes = ("http", "https")  # `config set-context --url` must use one of these

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def status(self, pipeline=None):
        name = pipeline or self.connection.pipeline or "hello"
        return [Pipeline(name=name, driver=self.driver, stages=[Stage(pipeline=name, name="greet")])]


app = typer.Typer()


@app.callback()
def hello() -> None:
    """Commands added by the hello plugin."""


@app.command()
def greet(name: str) -> None:
    """Say hello."""
    typer.echo(f"hello, {name}")
