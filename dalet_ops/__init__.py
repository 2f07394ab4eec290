"""Deploy and operations tooling (setup, preflight, replay, serve...). Never shipped in the Lambda package."""
