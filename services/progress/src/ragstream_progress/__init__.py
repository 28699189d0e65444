"""The progress service: projects every event into queryable job state."""
