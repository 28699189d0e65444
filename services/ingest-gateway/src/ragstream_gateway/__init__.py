"""The ingest gateway: accepts uploads, keeps documents and versions, opens jobs."""
