"""The embedded stack of ``make run`` and of the end-to-end tests.

``servers`` starts the engines the services need (NATS with JetStream, PostgreSQL);
``stack`` starts the five services as separate processes on top of them.
"""
