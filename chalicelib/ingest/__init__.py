"""Ingest: what clients send, validated and handed to the stream."""
