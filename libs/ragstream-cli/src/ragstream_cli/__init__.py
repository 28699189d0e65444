"""The ``ragstream`` command line: ingest files and watch them, manage documents and collections,
ask questions, read dead letters and check consistency, over the REST APIs of the services."""

from ragstream_cli.errors import CliError, ExitCode

__all__ = ["CliError", "ExitCode"]
