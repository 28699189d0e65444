"""Shared library of the ragstream services.

Modules: ``settings`` (typed configuration), ``bus`` (JetStream consume/publish with
retries and dead letters), ``events`` (subjects and event metadata), ``storage`` (object
store), ``db`` (PostgreSQL pool and migrations), ``telemetry`` (logs, traces, metrics),
``runtime`` (process lifecycle and the ops HTTP app), ``errors`` and the generated
contract in ``proto``.
"""
