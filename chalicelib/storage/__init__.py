"""Storage: the stream's batches written to the warehouse tables."""
