"""Fixtures over real servers for every test of the workspace."""

pytest_plugins = ["ragstream_devstack.testing"]
